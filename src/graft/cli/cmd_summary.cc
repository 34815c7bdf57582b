// graft summary MODEL.onnx — one row per node, like Keras' model.summary().
#include <cstdio>
#include <memory>

#include "graft/cli/common.h"
#include "graft/ir/summary.h"

namespace graft::cli {
namespace {

struct SummaryArgs {
  std::string model;
  std::vector<std::string> input_shapes;
  int64_t batch = 1;
  bool json = false;
};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

void run(const SummaryArgs& a) {
  const ir::Graph g = load_model(a.model, a.input_shapes, a.batch, /*weights=*/false);
  const ir::Summary s = ir::summarize(g);
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : s.rows) {
      nlohmann::json outs = nlohmann::json::array();
      for (size_t i = 0; i < r.outputs.size(); ++i) {
        outs.push_back({{"name", r.outputs[i]}, {"shape", shape_json(r.output_shapes[i])}});
      }
      rows.push_back({{"index", r.index},
                      {"name", r.name},
                      {"op_type", r.op_type},
                      {"outputs", outs},
                      {"params", r.params},
                      {"non_trainable_params", r.non_trainable},
                      {"macs", r.macs ? nlohmann::json(*r.macs) : nlohmann::json(nullptr)},
                      {"inputs_from", r.inputs_from}});
    }
    nlohmann::json j = {{"model", a.model},
                        {"graph", g.name},
                        {"opset", g.opset()},
                        {"rows", rows},
                        {"totals",
                         {{"params", s.params},
                          {"trainable_params", s.trainable},
                          {"non_trainable_params", s.non_trainable},
                          {"macs", s.macs},
                          {"nodes_with_unknown_macs", s.nodes_with_unknown_macs}}}};
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("Model: %s (graph '%s', opset %lld)\n", a.model.c_str(), g.name.c_str(),
              static_cast<long long>(g.opset()));
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : s.rows) {
    std::string shapes;
    for (const auto& sh : r.output_shapes) shapes += (shapes.empty() ? "" : " ") + ir::shape_str(sh);
    rows.push_back({std::to_string(r.index), r.name, r.op_type, shapes, thousands(r.params),
                    r.macs ? thousands(*r.macs) : "?", join(r.inputs_from, ", ")});
  }
  print_table({">#", "Node", "Op", "Output shape", ">Params", ">MACs", "Inputs from"}, rows);
  std::printf("Total params: %s\n", thousands(s.params).c_str());
  std::printf("Trainable params: %s\n", thousands(s.trainable).c_str());
  std::printf("Non-trainable params: %s\n", thousands(s.non_trainable).c_str());
  std::printf("Total MACs: %s%s\n", thousands(s.macs).c_str(),
              s.nodes_with_unknown_macs
                  ? (" (+ " + std::to_string(s.nodes_with_unknown_macs) + " nodes of unknown shape)").c_str()
                  : "");
}

}  // namespace

Command add_summary_command(CLI::App& root) {
  auto args = std::make_shared<SummaryArgs>();
  CLI::App* app = root.add_subcommand(
      "summary", "Per-node table: output shapes, parameters, MACs, inputs (like Keras' summary)");
  app->add_option("model", args->model, "Model file: ONNX or Keras (HDF5, .keras, TF.js model.json, JSON)")->required();
  add_input_shape_option(app, &args->input_shapes);
  app->add_option("--batch", args->batch,
                  "Size given to a symbolic batch dimension (figures are per image by default)")
      ->check(CLI::PositiveNumber);
  app->add_flag("--json", args->json, "Machine-readable output");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
