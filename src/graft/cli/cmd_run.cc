// graft run MODEL.onnx — run a model on NPY tensors or images; save any tensor, print top-k.
#include <ATen/ATen.h>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/data/image.h"
#include "graft/data/npy.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"

namespace graft::cli {
namespace {

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs, outputs, images;
  int top = 0;
  bool check_finite = false, no_optimize = false;
  bool json = false;
};

// "NAME=path" or "path" (the model's only input or output).
std::pair<std::string, std::string> split_binding(const std::string& text,
                                                  const std::vector<std::string>& defaults,
                                                  const char* what) {
  const size_t eq = text.find('=');
  if (eq != std::string::npos) return {text.substr(0, eq), text.substr(eq + 1)};
  if (defaults.size() != 1) {
    std::string names;
    for (const auto& d : defaults) names += (names.empty() ? "" : ", ") + d;
    throw Error(std::string("the model has ") + std::to_string(defaults.size()) + " " + what +
                "s (" + names + "); name one: --" + what + " NAME=" + text);
  }
  return {defaults[0], text};
}

std::vector<std::string> labels_of(const ir::Graph& g) {
  try {
    return ir::metadata_string_list(g, ir::kMetaLabels);
  } catch (const Error&) {
    return {};
  }
}

void run(const RunArgs& a) {
  ir::Graph g = read_model(a.model);
  exec::TensorMap inputs;
  for (const auto& binding : a.inputs) {
    auto [name, path] = split_binding(binding, g.inputs, "input");
    inputs[name] = data::read_npy(path);
  }
  if (!a.images.empty()) {
    if (g.inputs.size() != 1) throw Error(a.model + ": --image needs a model with one input");
    if (inputs.count(g.inputs[0])) throw Error("give either --image or --input for '" + g.inputs[0] + "', not both");
    const auto pre = data::Preprocess::from_metadata(g, a.model);
    std::vector<at::Tensor> batch;
    for (const auto& path : a.images) batch.push_back(data::preprocess(data::read_image(path, pre.channels), pre));
    inputs[g.inputs[0]] = at::stack(batch);
  }
  std::vector<std::string> wanted;
  std::vector<std::pair<std::string, std::string>> saves;
  for (const auto& binding : a.outputs) {
    saves.push_back(split_binding(binding, g.outputs, "output"));
    wanted.push_back(saves.back().first);
  }
  for (const auto& o : g.outputs) {
    if (std::find(wanted.begin(), wanted.end(), o) == wanted.end()) wanted.push_back(o);
  }
  const std::vector<std::string> labels = labels_of(g);
  exec::SessionOptions so;
  // Graph passes (BatchNorm folding, fusions) unless the user wants every node's own outputs
  // checked; the requested tensors are kept.
  so.optimize = !a.no_optimize && !a.check_finite;
  so.keep.insert(wanted.begin(), wanted.end());
  exec::Session session(std::move(g), so, a.model);
  exec::RunOptions options;
  options.check_finite = a.check_finite;
  exec::TensorMap out = session.run(inputs, wanted, options);
  for (const auto& [name, path] : saves) data::write_npy(out.at(name), path);

  const std::string& main_output = session.graph().outputs.at(0);
  const at::Tensor& y = out.at(main_output);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& name : wanted) {
    const at::Tensor& t = out.at(name);
    j["outputs"][name] = {{"shape", t.sizes().vec()}, {"dtype", c10::toString(t.scalar_type())}};
  }
  if (a.top > 0) {
    j["top"] = with_context("--top on output '" + main_output + "'", [&] { return top_k(y, a.top, labels); });
  }
  if (a.json) {
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  for (const auto& name : wanted) {
    const at::Tensor& t = out.at(name);
    std::printf("%s: %s %s\n", name.c_str(), c10::toString(t.scalar_type()), c10::str(t.sizes()).c_str());
  }
  if (a.top > 0) {
    for (size_t n = 0; n < j["top"].size(); ++n) {
      print_top_k(a.images.size() > n ? a.images[n] : "item " + std::to_string(n), j["top"][n]);
    }
  }
  for (const auto& [name, path] : saves) std::printf("wrote %s (%s)\n", path.c_str(), name.c_str());
}

}  // namespace

Command add_run_command(CLI::App& root) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* app = root.add_subcommand("run", "Run a model on NPY tensors or images");
  app->add_option("model", args->model, "Model file: ONNX or Keras (HDF5, .keras, TF.js model.json, JSON)")->required();
  app->add_option("--input", args->inputs, "[NAME=]x.npy: an input tensor (repeatable)");
  app->add_option("--output", args->outputs,
                  "[NAME=]y.npy: save a tensor, any intermediate by name (repeatable)");
  app->add_option("--image", args->images,
                  "PNG/JPEG image(s), preprocessed as the model's metadata says (one batch)");
  app->add_option("--top", args->top, "Print the top K classes of a (batch, classes) output")
      ->check(CLI::PositiveNumber);
  app->add_flag("--check-finite", args->check_finite,
                "Fail on NaN/Inf, naming the first node that produced one");
  app->add_flag("--no-optimize", args->no_optimize, "Run the graph as written (no BatchNorm folding or fusion)");
  app->add_flag("--json", args->json, "Machine-readable output");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
