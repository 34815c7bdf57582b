// graft split HYBRID.onnx --device DEV.onnx --server SRV.onnx [--at TENSOR] — the two halves of a
// hybrid for split deployment: the device half (inputs -> split tensor) and the server half
// (split tensor -> outputs), each plain ONNX with a graft.split record describing the other.
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/sha256.h"
#include "graft/cut/cut.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"

namespace graft::cli {
namespace {

constexpr const char* kMetaSplit = "graft.split";

struct SplitArgs {
  std::string model, device, server, at;
};

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
  ir::save(device, a.device);
  ir::save(server, a.server);
  std::printf("split %s at '%s' %s (%s bytes/image as float32)\n", a.model.c_str(), tensor.c_str(),
              ir::shape_str(shapes.value(tensor).shape).c_str(), thousands(point->bytes).c_str());
  std::printf("wrote %s: device half, %zu nodes, %s MACs/image\n", a.device.c_str(), device.nodes.size(),
              thousands(point->macs_before).c_str());
  std::printf("wrote %s: server half, %zu nodes, %s MACs/image\n", a.server.c_str(), server.nodes.size(),
              thousands(point->macs_after).c_str());
}

}  // namespace

Command add_split_command(CLI::App& root) {
  auto args = std::make_shared<SplitArgs>();
  CLI::App* app = root.add_subcommand("split", "Split a hybrid into a device half and a server half");
  app->add_option("model", args->model, "The (trained) hybrid ONNX file")->required();
  app->add_option("--device", args->device, "Write the device half (inputs -> split tensor) here")->required();
  app->add_option("--server", args->server, "Write the server half (split tensor -> outputs) here")->required();
  app->add_option("--at", args->at, "Split tensor (default: the hybrid's split point from its metadata)");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
