#include "fuzz/targets.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "graft/adapt/adapter.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/cut/cut.h"
#include "graft/data/dataset.h"
#include "graft/data/image.h"
#include "graft/data/npy.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/ir/summary.h"
#include "graft/keras/keras.h"
#include "graft/serve/codec.h"
#include "graft/serve/request.h"

namespace graft::fuzz {
namespace {

namespace fs = std::filesystem;

// The parsers that take paths read the input from a file of this process's own.
std::string temp_file(const std::string& name, const std::string& bytes) {
  static const fs::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    fs::path d = fs::path(tmp ? tmp : "/tmp") / ("graft-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  const fs::path p = dir / name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p.string();
}

template <typename Fn>
void refusing(Fn fn) {
  try {
    fn();
  } catch (const Error&) {
    // Refused with graft's one-line error: handled.
  }
}

// ---- ONNX: the wire walker, shape inference, the summary.
void onnx(const std::string& bytes) {
  refusing([&] {
    ir::Graph g = ir::parse(bytes, "/nonexistent/graft-fuzz", "fuzz.onnx");
    ir::infer_shapes(g);
    ir::summarize(g);
  });
}

// ---- NPY.
void npy(const std::string& bytes) {
  refusing([&] { data::parse_npy(bytes, "fuzz.npy"); });
}

// ---- IDX (Fashion-MNIST's format, raw or gzip): the first byte splits images from labels.
void idx(const std::string& bytes) {
  if (bytes.empty()) return;
  const size_t cut = std::min(bytes.size() - 1, static_cast<size_t>(static_cast<unsigned char>(bytes[0])) * 4);
  const std::string images = temp_file("images-idx3-ubyte", bytes.substr(1, cut));
  const std::string labels = temp_file("labels-idx1-ubyte", bytes.substr(1 + cut));
  refusing([&] { data::read_idx(images, labels); });
}

// ---- Images (stb_image: PNG, JPEG, BMP, GIF, ...), to 1 and 3 channels.
void image(const std::string& bytes) {
  const std::string path = temp_file("fuzz.img", bytes);
  refusing([&] { data::read_image(path, 3); });
  refusing([&] { data::read_image(path, 1); });
}

// ---- Keras: HDF5 (alone, and as a weights-only file with a config), .keras zip, JSON.
const std::string kKerasData = std::string(GRAFT_SOURCE_DIR) + "/tests/data/keras/";
void keras_hdf5(const std::string& bytes) {
  const std::string path = temp_file("fuzz.h5", bytes);
  refusing([&] { keras::import_model(path); });
  keras::ImportOptions o;
  o.config_path = kKerasData + "kotlindl_toyresnet.json";
  refusing([&] { keras::import_model(path, o); });
}
void keras_zip(const std::string& bytes) {
  const std::string path = temp_file("fuzz.keras", bytes);
  refusing([&] { keras::import_model(path); });
}
void keras_json(const std::string& bytes) {
  const std::string path = temp_file("model.json", bytes);
  refusing([&] { keras::import_model(path); });
}

// ---- The Open Inference Protocol request, as graft serve checks and decodes it.
void request(const std::string& bytes) {
  inference::ModelInferRequest req;
  if (!req.ParseFromString(bytes)) return;  // protobuf's own parser refused it
  serve::DecodedRequest out;
  serve::decode_request(req, {"m", "input", {-1, 3, 8, 8}, {"logits", "features"}, 64}, &out);
  serve::decode_request(req, {"m", "input", {-1, -1, -1, -1}, {"logits"}, 1 << 20}, &out);
}

// ---- Split-tensor codecs: byte 0 the datatype, byte 1 zstd, bytes 2-5 a shape, then the
// INT8 scale and zero-point lists (text up to a newline each) and the payload.
void codec(const std::string& bytes) {
  if (bytes.size() < 6) return;
  static const char* kTypes[] = {"FP32", "FP16", "INT8", "BF16"};
  const std::string type = kTypes[static_cast<unsigned char>(bytes[0]) % 4];
  const bool zstd = bytes[1] & 1;
  std::vector<int64_t> shape;
  for (size_t i = 2; i < 6; ++i) shape.push_back(static_cast<unsigned char>(bytes[i]) % 9);
  std::string rest = bytes.substr(6);
  const size_t a = rest.find('\n'), b = a == std::string::npos ? a : rest.find('\n', a + 1);
  const std::string scale = a == std::string::npos ? "" : rest.substr(0, a);
  const std::string zero = b == std::string::npos ? "" : rest.substr(a + 1, b - a - 1);
  const std::string payload = b == std::string::npos ? rest : rest.substr(b + 1);
  refusing([&] {
    const auto s = serve::split_floats(scale, "graft.scale");
    const auto z = serve::split_ints(zero, "graft.zero_point");
    serve::decode(type, shape, payload, zstd, s, z);
  });
  refusing([&] { serve::zstd_decompress(payload, static_cast<size_t>(shape[0]) * 1024); });
}

// ---- Adapter specs (graft design/stitch --adapter).
void adapter_spec(const std::string& bytes) {
  const adapt::Shape3 from{256, 29, 29};
  adapt::Target to;
  to.shape = {384, 8, 8};
  refusing([&] { adapt::parse_spec(bytes, from); });
  refusing([&] { adapt::validate_spec(bytes, from, to); });
}

// ---- Layer references (--at, cut specs) against the bundled mobile model.
void layer_ref(const std::string& bytes) {
  static const ir::Graph g = [] {
    ir::LoadOptions o;
    o.weights = false;
    ir::Graph m = ir::load(std::string(GRAFT_SOURCE_DIR) + "/models/mobile.onnx", o);
    ir::infer_shapes(m);
    return m;
  }();
  refusing([&] { cut::resolve_layer(g, bytes); });
  refusing([&] { cut::resolve_cut(g, bytes); });
}

// ---- Seeds made by code.

std::vector<std::string> npy_seeds() {
  std::vector<std::string> out;
  for (const at::Tensor& t : {at::arange(24, at::kFloat).reshape({2, 3, 4}), at::arange(6, at::kByte),
                              at::arange(4, at::kLong)}) {
    const std::string p = temp_file("seed.npy", "");
    data::write_npy(t, p);
    out.push_back(read_file(p));
  }
  return out;
}

std::string idx_file(uint8_t dims, const std::vector<uint32_t>& sizes) {
  std::string s{'\0', '\0', '\x08', static_cast<char>(dims)};
  size_t n = 1;
  for (uint32_t v : sizes) {
    for (int k = 3; k >= 0; --k) s += static_cast<char>((v >> (8 * k)) & 0xff);
    n *= v;
  }
  for (size_t i = 0; i < n; ++i) s += static_cast<char>(i * 7);
  return s;
}
std::vector<std::string> idx_seeds() {
  const std::string images = idx_file(3, {2, 4, 4}), labels = idx_file(1, {2});
  return {std::string(1, static_cast<char>(images.size() / 4)) + images + labels};
}

std::vector<std::string> image_seeds() {
  return {data::encode_png(at::arange(48, at::kByte).reshape({4, 4, 3})),
          data::encode_png(at::arange(16, at::kByte).reshape({4, 4, 1}))};
}

std::vector<std::string> request_seeds() {
  std::vector<std::string> out;
  for (const auto codec : {serve::Codec::kFp32, serve::Codec::kFp16, serve::Codec::kInt8}) {
    for (const bool zstd : {false, true}) {
      const std::vector<float> x(2 * 3 * 8 * 8, 0.5f);
      const serve::Encoded e = serve::encode(x.data(), {2, 3, 8, 8}, codec, zstd);
      inference::ModelInferRequest req;
      req.set_model_name("m");
      auto* in = req.add_inputs();
      in->set_name("input");
      in->set_datatype(e.datatype);
      for (int64_t d : {2, 3, 8, 8}) in->add_shape(d);
      auto& params = *in->mutable_parameters();
      if (zstd) params["graft.zstd"].set_bool_param(true);
      if (codec == serve::Codec::kInt8) {
        params["graft.scale"].set_string_param(serve::join_floats(e.scale));
        params["graft.zero_point"].set_string_param(serve::join_ints(e.zero_point));
      }
      req.add_raw_input_contents(e.bytes);
      req.add_outputs()->set_name("logits");
      out.push_back(req.SerializeAsString());
    }
  }
  return out;
}

std::vector<std::string> codec_seeds() {
  std::vector<std::string> out;
  const std::vector<float> x(2 * 3 * 2 * 2, 0.25f);
  for (const auto codec : {serve::Codec::kFp32, serve::Codec::kFp16, serve::Codec::kInt8}) {
    for (const bool zstd : {false, true}) {
      const serve::Encoded e = serve::encode(x.data(), {2, 3, 2, 2}, codec, zstd);
      std::string s{static_cast<char>(codec == serve::Codec::kFp32 ? 0 : codec == serve::Codec::kFp16 ? 1 : 2),
                    static_cast<char>(zstd), 2, 3, 2, 2};
      s += serve::join_floats(e.scale) + "\n" + serve::join_ints(e.zero_point) + "\n" + e.bytes;
      out.push_back(s);
    }
  }
  return out;
}

std::vector<std::string> adapter_seeds() {
  return {"conv:k=3,s=4,p=1,c=384;bn;relu6", "avgpool:k=8,s=3;conv:k=1,c=384",
          "conv:k=5,s=4,p=2,c=128;bn;relu;split;conv:k=3,p=1,c=384;bn;relu", "resize:h=8,w=8;conv:k=1,c=384",
          "convt:k=2,s=2,c=384"};
}

std::vector<std::string> layer_seeds() { return {"36", "conv_pw_5_relu", "tensor:input", "12,36", "-1", "conv_pad_6"}; }

std::vector<std::string> none() { return {}; }

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"onnx", onnx, none},
      {"npy", npy, npy_seeds},
      {"idx", idx, idx_seeds},
      {"image", image, image_seeds},
      {"keras_hdf5", keras_hdf5, none},
      {"keras_zip", keras_zip, none},
      {"keras_json", keras_json, none},
      {"request", request, request_seeds},
      {"codec", codec, codec_seeds},
      {"adapter_spec", adapter_spec, adapter_seeds},
      {"layer_ref", layer_ref, layer_seeds},
  };
  return all;
}

const Target* find_target(const std::string& name) {
  for (const auto& t : targets()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

}  // namespace graft::fuzz
