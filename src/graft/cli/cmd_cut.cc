// graft cut MODEL.onnx --at LAYER|tensor:NAME[,...] --head H.onnx --tail T.onnx
#include <cstdio>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/sha256.h"
#include "graft/cut/cut.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"

namespace graft::cli {
namespace {

struct CutArgs {
  std::string model, at, head, tail;
  std::vector<std::string> input_shapes;
};

std::string describe(const ir::Graph& g, const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n + " " + ir::shape_str(g.value(n).shape);
  return out;
}

void run(const CutArgs& a) {
  if (a.head.empty() && a.tail.empty()) throw Error("nothing to write: give --head FILE and/or --tail FILE");
  const ir::Graph g = load_model(a.model, a.input_shapes, /*batch=*/0, /*weights=*/true);
  const std::vector<std::string> cut = cut::resolve_cut(g, a.at);
  const cut::Source source{a.model, sha256_file(a.model)};
  // Build and check both before writing either, so a bad cut writes nothing.
  std::vector<std::pair<ir::Graph, std::string>> parts;
  if (!a.head.empty()) parts.emplace_back(cut::head(g, cut, source), a.head);
  if (!a.tail.empty()) parts.emplace_back(cut::tail(g, cut, source), a.tail);
  for (auto& [part, path] : parts) {
    with_context(path, [&] {
      ir::infer_shapes(part);
      ir::check(part);
    });
  }
  for (const auto& [part, path] : parts) {
    ir::save(part, path);
    const bool is_head = part.get_metadata("graft.role") == "head";
    std::printf("wrote %s: %s, %zu nodes; %s %s\n", path.c_str(), is_head ? "head" : "tail",
                part.nodes.size(), is_head ? "outputs" : "inputs",
                describe(part, is_head ? part.outputs : part.inputs).c_str());
  }
}

}  // namespace

Command add_cut_command(CLI::App& root) {
  auto args = std::make_shared<CutArgs>();
  CLI::App* app = root.add_subcommand("cut", "Cut a model into a head and a tail");
  app->add_option("model", args->model, "Model file: ONNX or Keras (HDF5, .keras, TF.js model.json, JSON)")->required();
  app->add_option("--at", args->at,
                  "Where: a row index (36), a node name (conv_pad_6) or tensor:NAME; "
                  "comma-separated for several tensors")->required();
  app->add_option("--head", args->head, "Write the head (input -> cut) here");
  app->add_option("--tail", args->tail, "Write the tail (cut -> output) here");
  add_input_shape_option(app, &args->input_shapes);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
