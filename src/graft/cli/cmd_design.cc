// graft design --from A.onnx@LAYER --to B.onnx@LAYER — candidate adapters between two cuts.
#include <cstdio>
#include <memory>

#include "graft/adapt/adapter.h"
#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/cut/cut.h"

namespace graft::cli {
namespace {

struct DesignArgs {
  std::string from, to, family, adapter;
  bool json = false;
};

const char* activation_name(adapt::Activation a) {
  return a == adapt::Activation::kRelu ? "relu" : a == adapt::Activation::kRelu6 ? "relu6" : "none";
}

void run(const DesignArgs& a) {
  const ModelRef from = parse_model_ref(a.from, "--from"), to = parse_model_ref(a.to, "--to");
  const ir::Graph ga = load_model(from.path, {}, 1, /*weights=*/false);
  const ir::Graph gb = load_model(to.path, {}, 1, /*weights=*/false);
  const auto source_cut = with_context(from.path, [&] { return cut::resolve_cut(ga, from.layer); });
  if (source_cut.size() != 1) {
    throw Error(from.path + ": cutting at '" + from.layer + "' leaves " + std::to_string(source_cut.size()) +
                " tensors; the head must end in one (graft cuts " + from.path + " --near " + from.layer + ")");
  }
  const adapt::Shape3 source = with_context(from.path, [&] { return adapt::shape_of(ga, source_cut[0]); });
  const auto targets = with_context(to.path, [&] { return cut::resolve_cut(gb, to.layer); });
  nlohmann::json j = {{"from", {{"model", from.path}, {"layer", from.layer}, {"tensor", source_cut[0]}, {"shape", source.str()}}},
                      {"targets", nlohmann::json::array()}};
  for (size_t i = 0; i < targets.size(); ++i) {
    const adapt::Target target = with_context(to.path, [&] { return adapt::target_of(gb, targets[i]); });
    std::vector<adapt::Adapter> candidates;
    if (!a.adapter.empty()) {
      candidates.push_back(adapt::choose(a.adapter, source, target));
    } else {
      candidates = adapt::design(source, target, a.family);
    }
    nlohmann::json jt = {{"tensor", targets[i]}, {"shape", target.shape.str()},
                         {"activation", activation_name(target.activation)}, {"why", target.why},
                         {"candidates", nlohmann::json::array()}};
    std::vector<std::vector<std::string>> rows;
    for (size_t k = 0; k < candidates.size(); ++k) {
      const auto& c = candidates[k];
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& l : c.layers) layers.push_back(l.spec());
      jt["candidates"].push_back({{"family", c.family}, {"spec", c.spec()}, {"layers", layers},
                                  {"params", c.params}, {"macs", c.macs}, {"output", c.out.str()},
                                  {"split", c.split_after >= 0 ? c.split_shape.str() : ""}, {"notes", c.notes}});
      rows.push_back({std::to_string(k + 1), c.family, c.spec(), thousands(c.params), thousands(c.macs),
                      c.out.str(), c.notes});
    }
    j["targets"].push_back(jt);
    if (a.json) continue;
    std::printf("%s%s (%s) -> %s (%s)%s\n", i ? "\n" : "", source_cut[0].c_str(), source.str().c_str(),
                targets[i].c_str(), target.shape.str().c_str(),
                targets.size() > 1 ? (" [target " + std::to_string(i + 1) + " of " + std::to_string(targets.size()) + "]").c_str() : "");
    std::printf("final activation: %s\n", target.why.c_str());
    if (rows.empty()) {
      std::printf("no %s adapter fits\n", a.family.c_str());
    } else {
      print_table({">#", "Family", "Layers", ">Params", ">MACs", "Output", "Notes"}, rows);
    }
  }
  if (a.json) std::printf("%s\n", j.dump(1).c_str());
}

}  // namespace

Command add_design_command(CLI::App& root) {
  auto args = std::make_shared<DesignArgs>();
  CLI::App* app = root.add_subcommand("design", "Candidate adapters from one model's cut to another's");
  app->add_option("--from", args->from, "A.onnx@LAYER: where the head ends (a cut point)")->required();
  app->add_option("--to", args->to, "B.onnx@LAYER: where the tail starts (one adapter per crossing tensor)")->required();
  app->add_option("--family", args->family, "Only this family: conv, linear, bottleneck, resample")
      ->check(CLI::IsMember({"conv", "linear", "bottleneck", "resample"}));
  app->add_option("--adapter", args->adapter, "Validate this adapter spec instead (e.g. \"conv:k=3,s=4,p=1,c=384;bn;relu\")");
  app->add_flag("--json", args->json, "Machine-readable output");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
