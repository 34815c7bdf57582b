// graft split HYBRID.onnx --device DEV.onnx --server SRV.onnx [--at TENSOR] — the two halves of a
// hybrid for split deployment: the device half (inputs -> split tensor) and the server half
// (split tensor -> outputs), each plain ONNX with a graft.split record describing the other.
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/core/log.h"
#include "graft/core/sha256.h"
#include "graft/cut/cut.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"

namespace graft::cli {
namespace {

constexpr const char* kMetaSplit = "graft.split";

struct SplitArgs {
  std::string model, device, server, at, triton_repo;
  int64_t triton_max_batch = 32, triton_delay_us = 100;
};

std::string pbtxt_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A Triton Inference Server model repository for the server half: REPO/NAME/config.pbtxt and
// REPO/NAME/1/model.onnx, for Triton's onnxruntime backend with dynamic batching. Returns the
// model's directory.
std::string write_triton_repo(const SplitArgs& a, const ir::Graph& server) {
  const std::string name = std::filesystem::path(a.server).stem().string();
  const std::filesystem::path dir = std::filesystem::path(a.triton_repo) / name;
  std::filesystem::create_directories(dir / "1");
  // Triton batches along a variable first dimension; a half whose batch is fixed is served as is.
  bool batched = true;
  for (const auto& v : {server.inputs, server.outputs}) {
    for (const auto& n : v) {
      const auto& shape = server.value(n).shape;
      if (!shape || shape->empty() || shape->front().known()) batched = false;
    }
  }
  if (!batched) log::warn(a.server + ": the batch dimension is fixed; the Triton model gets max_batch_size 0 (no batching)");
  auto tensors = [&](const char* kind, const std::vector<std::string>& names) {
    std::string t = std::string(kind) + " [\n";
    for (size_t i = 0; i < names.size(); ++i) {
      const auto& shape = *server.value(names[i]).shape;
      std::string dims;
      for (size_t d = batched ? 1 : 0; d < shape.size(); ++d) {
        dims += (dims.empty() ? "" : ", ") + std::to_string(shape[d].known() ? shape[d].value : -1);
      }
      t += "  {\n    name: " + pbtxt_string(names[i]) + "\n    data_type: TYPE_FP32\n    dims: [ " + dims + " ]\n  }" +
           (i + 1 < names.size() ? ",\n" : "\n");
    }
    return t + "]\n";
  };
  for (const auto& n : server.inputs) {
    if (server.value(n).dtype != ir::kFloat) throw Error(a.server + ": input '" + n + "' is not float32; the Triton config writer expects float32");
  }
  std::string config = "# Written by graft split: the server half of " + a.model + " for Triton's onnxruntime backend.\n";
  config += "name: " + pbtxt_string(name) + "\n";
  config += "platform: \"onnxruntime_onnx\"\n";
  config += "max_batch_size: " + std::to_string(batched ? a.triton_max_batch : 0) + "\n";
  config += tensors("input", server.inputs);
  config += tensors("output", server.outputs);
  if (batched) {
    config += "dynamic_batching {\n  max_queue_delay_microseconds: " + std::to_string(a.triton_delay_us) + "\n}\n";
  }
  config += "instance_group [ { count: 1, kind: KIND_CPU } ]\n";
  ir::save(server, (dir / "1" / "model.onnx").string());
  write_file_atomic((dir / "config.pbtxt").string(), config);
  return dir.string();
}

// The default split tensor: the adapter's split point from graft.cut (the bottleneck's
// boundary, else the head/adapter boundary).
std::string default_split(const ir::Graph& g, const std::string& model) {
  const auto record = nlohmann::json::parse(g.get_metadata(ir::kMetaCut).value_or(""), nullptr, false);
  if (!record.is_object() || !record.contains("split_point") || !record["split_point"].is_string()) {
    throw Error(model + " records no split point (graft.cut.split_point): it is not a hybrid stitched by graft; "
                        "give the split tensor with --at TENSOR");
  }
  return record["split_point"].get<std::string>();
}

void run(const SplitArgs& a) {
  if (std::filesystem::absolute(a.device) == std::filesystem::absolute(a.server)) {
    throw Error("--device and --server are the same file '" + a.device + "'");
  }
  const ir::Graph g = load_model(a.model, {}, /*batch=*/0, /*weights=*/true);
  const std::string tensor = a.at.empty() ? default_split(g, a.model) : a.at;
  if (!g.has_value(tensor)) throw Error(a.model + ": no tensor named '" + tensor + "' to split at");
  // The split must be one tensor every input-to-output path crosses.
  const ir::Graph shapes = load_model(a.model, {}, /*batch=*/1, /*weights=*/false);
  const auto points = cut::cut_points(shapes);
  const cut::CutPoint* point = nullptr;
  for (const auto& p : points) {
    if (p.tensor == tensor) point = &p;
  }
  if (point == nullptr) {
    const ir::Value& v = shapes.value(tensor);
    std::string nearest;
    if (v.producer >= 0) {
      const cut::Advice advice = cut::advise(shapes, v.producer, points);
      if (advice.before) nearest += " before: " + advice.before->tensor;
      if (advice.after) nearest += (nearest.empty() ? " " : ", ") + std::string("after: ") + advice.after->tensor;
    }
    throw Error(a.model + ": '" + tensor + "' is not a cut point of the hybrid (other tensors also cross there); "
                "split at a single-tensor cut" + (nearest.empty() ? "" : " — nearest" + nearest));
  }
  const cut::Source source{a.model, sha256_file(a.model)};
  ir::Graph device = cut::head(g, {tensor}, source);
  ir::Graph server = cut::tail(g, {tensor}, source);
  const ir::Value& v = g.value(tensor);
  nlohmann::json record = {{"tensor", tensor},
                           {"dtype", ir::dtype_name(v.dtype)},
                           {"shape", shape_json(v.shape)},
                           {"bytes_per_image", point->bytes},
                           {"hybrid", {{"source", a.model}, {"sha256", source.sha256}}},
                           {"device", {{"file", std::filesystem::path(a.device).filename().string()},
                                       {"macs_per_image", point->macs_before}}},
                           {"server", {{"file", std::filesystem::path(a.server).filename().string()},
                                       {"macs_per_image", point->macs_after}}}};
  for (auto* part : {&device, &server}) {
    const bool is_device = part == &device;
    record["part"] = is_device ? "device" : "server";
    part->set_metadata(ir::kMetaRole, is_device ? "device" : "server");
    part->set_metadata(kMetaSplit, record.dump());
    with_context(is_device ? a.device : a.server, [&] {
      ir::infer_shapes(*part);
      ir::check(*part);
    });
  }
  // The device half answers for the whole pipeline's classes: it keeps the hybrid's labels.
  if (auto labels = g.get_metadata(ir::kMetaLabels)) device.set_metadata(ir::kMetaLabels, *labels);
  ir::save(device, a.device);
  ir::save(server, a.server);
  std::printf("split %s at '%s' %s (%s bytes/image as float32)\n", a.model.c_str(), tensor.c_str(),
              ir::shape_str(shapes.value(tensor).shape).c_str(), thousands(point->bytes).c_str());
  std::printf("wrote %s: device half, %zu nodes, %s MACs/image\n", a.device.c_str(), device.nodes.size(),
              thousands(point->macs_before).c_str());
  std::printf("wrote %s: server half, %zu nodes, %s MACs/image\n", a.server.c_str(), server.nodes.size(),
              thousands(point->macs_after).c_str());
  if (!a.triton_repo.empty()) {
    const std::string dir = write_triton_repo(a, server);
    std::printf("wrote %s/{config.pbtxt,1/model.onnx}: the server half as a Triton model repository entry\n", dir.c_str());
  }
}

}  // namespace

Command add_split_command(CLI::App& root) {
  auto args = std::make_shared<SplitArgs>();
  CLI::App* app = root.add_subcommand("split", "Split a hybrid into a device half and a server half");
  app->add_option("model", args->model, "The (trained) hybrid ONNX file")->required();
  app->add_option("--device", args->device, "Write the device half (inputs -> split tensor) here")->required();
  app->add_option("--server", args->server, "Write the server half (split tensor -> outputs) here")->required();
  app->add_option("--at", args->at, "Split tensor (default: the hybrid's split point from its metadata)");
  app->add_option("--triton-repo", args->triton_repo,
                  "Also write the server half into this Triton model repository (config.pbtxt + 1/model.onnx)");
  app->add_option("--triton-max-batch", args->triton_max_batch, "Triton max_batch_size (default 32)")
      ->check(CLI::PositiveNumber);
  app->add_option("--triton-delay-us", args->triton_delay_us, "Triton dynamic batching queue delay (default 100)")
      ->check(CLI::NonNegativeNumber);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
