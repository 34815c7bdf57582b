// graft stitch --head A.onnx@LAYER --tail B.onnx@LAYER [--adapter FAMILY|SPEC] -o hybrid.onnx
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/summary.h"
#include "graft/stitch/stitch.h"

namespace graft::cli {
namespace {

struct StitchArgs {
  std::string head, tail, adapter = "conv", output;
  uint64_t seed = 0;
};

void run(const StitchArgs& a) {
  const ModelRef head = parse_model_ref(a.head, "--head"), tail = parse_model_ref(a.tail, "--tail");
  const ir::Graph ga = load_model(head.path, {}, 0, /*weights=*/true);
  const ir::Graph gb = load_model(tail.path, {}, 0, /*weights=*/true);
  stitch::Options o;
  o.adapter = a.adapter;
  o.seed = a.seed;
  o.head_path = head.path;
  o.tail_path = tail.path;
  ir::Graph hybrid = stitch::stitch(ga, head.layer, gb, tail.layer, o);
  with_context(a.output, [&] { ir::check(hybrid); });
  ir::save(hybrid, a.output);
  const auto record = nlohmann::json::parse(*hybrid.get_metadata(ir::kMetaCut));
  std::printf("wrote %s: %zu nodes (%s)\n", a.output.c_str(), hybrid.nodes.size(), hybrid.name.c_str());
  for (const auto& ad : record["adapters"]) {
    std::printf("adapter to %s: %s (%s parameters, %s MACs)\n", ad["target"].get<std::string>().c_str(),
                ad["spec"].get<std::string>().c_str(), thousands(ad["params"].get<int64_t>()).c_str(),
                thousands(ad["macs"].get<int64_t>()).c_str());
  }
  std::printf("split point: %s; trainable: %zu initializers\n",
              record["split_point"].get<std::string>().c_str(),
              ir::metadata_string_list(hybrid, ir::kMetaTrainable).size());
}

}  // namespace

Command add_stitch_command(CLI::App& root) {
  auto args = std::make_shared<StitchArgs>();
  CLI::App* app = root.add_subcommand("stitch", "Join A's head to B's tail through an adapter: one ONNX model");
  app->add_option("--head", args->head, "A.onnx@LAYER: the head ends there (a cut point)")->required();
  app->add_option("--tail", args->tail, "B.onnx@LAYER: the tail starts there")->required();
  app->add_option("--adapter", args->adapter,
                  "A family (conv, linear, bottleneck, resample; its best candidate) or a spec such "
                  "as \"conv:k=3,s=4,p=1,c=384;bn;relu\" (default: conv)");
  app->add_option("--seed", args->seed, "Seed of the adapter's initialisation");
  app->add_option("-o,--output", args->output, "The hybrid ONNX file")->required();
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
