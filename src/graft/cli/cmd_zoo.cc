// graft zoo NAME -o FILE.onnx — the architectures of the canonical example, randomly initialised.
#include <cstdio>
#include <memory>
#include <sstream>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/summary.h"
#include "graft/zoo/zoo.h"

namespace graft::cli {
namespace {

struct ZooArgs {
  std::string name;
  std::string output;
  uint64_t seed = 0;
  double alpha = 1.0;
  int64_t input = 0;  // 0: the model's default
  int64_t channels = 3;
  int64_t classes = 1000;
  bool no_top = false;
  double width = 1.0;
  std::string repeats = "10,20,10";
  CLI::App* app = nullptr;
};

std::array<int, 3> parse_repeats(const std::string& text) {
  std::array<int, 3> r{};
  char extra = 0;
  std::istringstream in(text);
  char c1 = 0, c2 = 0;
  if (!(in >> r[0] >> c1 >> r[1] >> c2 >> r[2]) || c1 != ',' || c2 != ',' || (in >> extra)) {
    throw Error("bad --repeats '" + text + "': expected A,B,C (block35, block17, block8 counts), "
                "e.g. 10,20,10");
  }
  return r;
}

void reject_if_given(const ZooArgs& a, const char* option, const std::string& model) {
  if (a.app->count(option) > 0) {
    throw Error(std::string(option) + " does not apply to " + model);
  }
}

void run(const ZooArgs& a) {
  ir::Graph g;
  if (a.name == "mobilenet_v1") {
    reject_if_given(a, "--width", a.name);
    reject_if_given(a, "--repeats", a.name);
    zoo::MobileNetV1Options o;
    o.alpha = a.alpha;
    o.input = a.input ? a.input : o.input;
    o.channels = a.channels;
    o.classes = a.classes;
    o.include_top = !a.no_top;
    o.seed = a.seed;
    g = zoo::mobilenet_v1(o);
  } else if (a.name == "inception_resnet_v2") {
    reject_if_given(a, "--alpha", a.name);
    zoo::InceptionResNetV2Options o;
    o.input = a.input ? a.input : o.input;
    o.channels = a.channels;
    o.classes = a.classes;
    o.include_top = !a.no_top;
    o.width = a.width;
    o.repeats = parse_repeats(a.repeats);
    o.seed = a.seed;
    g = zoo::inception_resnet_v2(o);
  } else {
    std::string names;
    for (const auto& n : zoo::model_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("unknown zoo model '" + a.name + "' (available: " + names + ")");
  }
  ir::save(g, a.output);
  const ir::Summary s = ir::summarize(g);
  std::printf("wrote %s: %s, %zu nodes, %s parameters (%s non-trainable)\n", a.output.c_str(),
              a.name.c_str(), g.nodes.size(), thousands(s.params).c_str(),
              thousands(s.non_trainable).c_str());
}

}  // namespace

Command add_zoo_command(CLI::App& root) {
  auto args = std::make_shared<ZooArgs>();
  CLI::App* app = root.add_subcommand(
      "zoo", "Write a zoo architecture (Keras layer names) as ONNX, randomly initialised");
  args->app = app;
  app->add_option("name", args->name, "mobilenet_v1 | inception_resnet_v2")->required();
  app->add_option("-o,--output", args->output, "Output ONNX file")->required();
  app->add_option("--seed", args->seed, "Seed of the random initialisation");
  app->add_option("--alpha", args->alpha, "mobilenet_v1 width multiplier: 0.25, 0.5, 0.75, 1.0");
  app->add_option("--input", args->input,
                  "Input size in pixels (default 224 for mobilenet_v1, 299 for inception_resnet_v2)")
      ->check(CLI::PositiveNumber);
  app->add_option("--channels", args->channels, "Input channels (default 3)")
      ->check(CLI::PositiveNumber);
  app->add_option("--classes", args->classes, "Output classes (default 1000)")
      ->check(CLI::PositiveNumber);
  app->add_flag("--no-top", args->no_top, "Leave out the classifier (pooling and dense layers)");
  app->add_option("--width", args->width,
                  "inception_resnet_v2 channel multiplier for small variants (default 1.0)");
  app->add_option("--repeats", args->repeats,
                  "inception_resnet_v2 block35,block17,block8 counts (default 10,20,10)");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
