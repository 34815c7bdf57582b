// graft convert MODEL -o OUT.onnx — any model graft reads (a Keras file) written as ONNX.
#include <cstdio>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/ir/onnx_io.h"

namespace graft::cli {
namespace {

struct ConvertArgs {
  std::string model, out;
  std::vector<std::string> input_shapes;
};

void run(const ConvertArgs& a) {
  ir::Graph g = load_model(a.model, a.input_shapes, /*batch=*/0, /*weights=*/true);
  with_context(a.out, [&] { ir::check(g); });
  ir::save(g, a.out);
  std::printf("wrote %s: %zu nodes, %zu initializers, opset %lld\n", a.out.c_str(), g.nodes.size(),
              g.initializers.size(), static_cast<long long>(g.opset()));
}

}  // namespace

Command add_convert_command(CLI::App& root) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* app = root.add_subcommand(
      "convert", "Write a model (a Keras HDF5, .keras, TF.js or JSON file) as ONNX, Keras names kept");
  app->add_option("model", args->model, "Model file (detected by content)")->required();
  app->add_option("-o,--output", args->out, "ONNX file to write")->required();
  add_input_shape_option(app, &args->input_shapes);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
