// Keras 3 .keras archives (libzip) and TensorFlow.js weight shards.
#include <zip.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstring>
#include <filesystem>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/keras/internal.h"

namespace graft::keras::internal {
namespace {

constexpr uint64_t kMaxMember = uint64_t{4} << 30;  // 4 GiB: more than any CNN's weights

}  // namespace

std::string zip_member(const std::string& path, const std::string& member) {
  int err = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> z(zip_open(path.c_str(), ZIP_RDONLY, &err), zip_discard);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, err);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    throw Error(path + ": not a readable zip archive (" + why + ")");
  }
  const zip_int64_t index = zip_name_locate(z.get(), member.c_str(), 0);
  if (index < 0) throw Error(path + ": the archive has no '" + member + "' (not a Keras 3 .keras file?)");
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z.get(), static_cast<zip_uint64_t>(index), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
      st.size > kMaxMember) {
    throw Error(path + ": member '" + member + "' has a bad size (corrupt archive?)");
  }
  std::unique_ptr<zip_file_t, decltype(&zip_fclose)> f(zip_fopen_index(z.get(), static_cast<zip_uint64_t>(index), 0),
                                                       zip_fclose);
  if (!f) throw Error(path + ": cannot open member '" + member + "' (" + zip_strerror(z.get()) + ")");
  std::string bytes(st.size, '\0');
  zip_uint64_t done = 0;
  while (done < st.size) {
    const zip_int64_t n = zip_fread(f.get(), bytes.data() + done, st.size - done);
    if (n <= 0) throw Error(path + ": member '" + member + "' is truncated or corrupt (" + zip_file_strerror(f.get()) + ")");
    done += static_cast<zip_uint64_t>(n);
  }
  return bytes;
}

namespace {

class TfjsStore : public WeightStore {
 public:
  TfjsStore(const std::string& model_json, const nlohmann::json& manifest) : origin_(model_json) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(model_json).parent_path();
    if (!manifest.is_array()) throw Error("weightsManifest is not a list");
    for (const auto& group : manifest) {
      std::string bytes;
      for (const auto& p : group.at("paths")) {
        const std::string rel = p.get<std::string>();
        const fs::path rp(rel);
        if (rp.is_absolute() || rel.find("..") != std::string::npos) {
          throw Error("weight shard path '" + rel + "' must stay beside model.json");
        }
        bytes += read_file((dir / rp).string());
      }
      size_t offset = 0;
      for (const auto& w : group.at("weights")) {
        const std::string name = w.at("name");
        std::vector<int64_t> shape = w.at("shape").get<std::vector<int64_t>>();
        int64_t count = 1;
        for (int64_t d : shape) {
          if (d < 0 || d > (int64_t{1} << 32)) throw Error("weight '" + name + "' has a bad shape");
          count *= d;
          if (count > (int64_t{1} << 32)) throw Error("weight '" + name + "' is too large");
        }
        std::string dtype = w.value("dtype", "float32");
        const auto& q = w.contains("quantization") ? w["quantization"] : nlohmann::json();
        const std::string stored = q.is_object() ? q.value("dtype", dtype) : dtype;
        const size_t width = stored == "uint8" ? 1 : (stored == "uint16" || stored == "float16") ? 2 : 4;
        if (stored != "float32" && stored != "int32" && stored != "uint8" && stored != "uint16" && stored != "float16") {
          throw Error("weight '" + name + "' has unsupported dtype '" + stored + "'");
        }
        const size_t n = static_cast<size_t>(count) * width;
        if (offset + n > bytes.size()) {
          throw Error("the weight shards end inside weight '" + name + "' (truncated shard?)");
        }
        const char* src = bytes.data() + offset;
        offset += n;
        at::Tensor t = at::empty(shape, at::kFloat);
        float* dst = t.data_ptr<float>();
        if (stored == "float32") {
          if (n) std::memcpy(dst, src, n);
        } else if (stored == "int32") {
          for (int64_t i = 0; i < count; ++i) {
            int32_t v;
            std::memcpy(&v, src + 4 * i, 4);
            dst[i] = static_cast<float>(v);
          }
        } else if (stored == "float16") {
          at::Tensor h = at::from_blob(const_cast<char*>(src), shape, at::kHalf).to(at::kFloat);
          t.copy_(h);
        } else {  // uint8/uint16: value = q * scale + min
          const float scale = q.value("scale", 1.0f), min = q.value("min", 0.0f);
          for (int64_t i = 0; i < count; ++i) {
            uint32_t v = 0;
            if (width == 1) {
              v = static_cast<uint8_t>(src[i]);
            } else {
              uint16_t s;
              std::memcpy(&s, src + 2 * i, 2);
              v = s;
            }
            dst[i] = static_cast<float>(v) * scale + min;
          }
        }
        const size_t slash = name.rfind('/');
        weights_[slash == std::string::npos ? "" : name.substr(0, slash)].push_back(t);
      }
    }
  }

  std::vector<at::Tensor> layer_weights(const LayerPath& p,
                                        const std::vector<std::vector<int64_t>>& shapes) override {
    std::string full;
    for (const auto& n : p.names) full += (full.empty() ? "" : "/") + n;
    auto it = weights_.find(full);
    if (it == weights_.end()) it = weights_.find(p.names.back());
    if (it == weights_.end()) throw Error(origin_ + " has no weights named '" + full + "/…'");
    if (it->second.size() != shapes.size()) {
      throw Error(origin_ + " has " + std::to_string(it->second.size()) + " weights for it, the config implies " +
                  std::to_string(shapes.size()));
    }
    return it->second;
  }

 private:
  std::string origin_;
  std::map<std::string, std::vector<at::Tensor>> weights_;
};

}  // namespace

std::unique_ptr<WeightStore> tfjs_store(const std::string& model_json_path, const nlohmann::json& manifest) {
  return with_context(model_json_path, [&]() -> std::unique_ptr<WeightStore> {
    try {
      return std::make_unique<TfjsStore>(model_json_path, manifest);
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("malformed weightsManifest: ") + e.what());
    }
  });
}

}  // namespace graft::keras::internal
