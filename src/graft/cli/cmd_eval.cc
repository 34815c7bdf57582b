// graft eval MODEL.onnx --data … — top-1, top-5, per-class accuracy, confusion matrix; for a
// hybrid, its two source models side by side.
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/log.h"
#include "graft/core/sha256.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/train/distributed.h"
#include "graft/train/evaluate.h"

namespace graft::cli {
namespace {

struct EvalArgs {
  std::string model, data = "fashion-mnist", split = "test";
  int64_t batch = 256, limit = 0;
  bool json = false, no_sources = false;
  DistArgs dist;
};

// With several ranks, each scores every world-th example and the counts are summed.
nlohmann::json evaluate_file(const std::string& path, const data::Dataset& d, int64_t batch,
                             train::ProcessGroup* group) {
  ir::Graph g = read_model(path);
  const auto p = data::Preprocess::from_metadata(g, path);
  exec::SessionOptions so;
  so.optimize = true;
  exec::Session s(std::move(g), so, path);
  const data::Dataset mine = group ? train::eval_shard(d, group->rank(), group->world()) : d;
  train::Evaluation e = train::evaluate(s, mine, p, batch);
  if (group) e = train::all_reduce(e, *group);
  nlohmann::json j = train::to_json(e);
  j["model"] = path;
  return j;
}

void run(const EvalArgs& a) {
  const std::shared_ptr<train::ProcessGroup> group = connect_dist(a.dist);
  const data::Dataset d = data::head(data::open_dataset(a.data, a.split), a.limit);
  nlohmann::json j = {{"data", a.data}, {"split", a.split}, {"count", d.size()}, {"models", nlohmann::json::array()}};
  if (!d.classes.empty()) j["classes"] = d.classes;
  j["models"].push_back(evaluate_file(a.model, d, a.batch, group.get()));
  j["models"][0]["role"] = "model";
  // A hybrid: its mobile (head) and server (tail) source models too, when their files are there.
  const ir::Graph meta = read_model(a.model, false);
  if (meta.get_metadata(ir::kMetaRole) == "hybrid" && !a.no_sources) {
    j["models"][0]["role"] = "hybrid";
    const auto record = nlohmann::json::parse(meta.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
    for (const char* part : {"head", "tail"}) {
      const std::string src = record.is_object() && record.contains(part) ? record[part].value("source", "") : "";
      if (src.empty() || !std::filesystem::exists(src)) {
        log::warn(std::string("the hybrid's ") + part + " source '" + src + "' is not there; not evaluated");
        continue;
      }
      if (sha256_file(src) != record[part].value("sha256", "")) {
        log::warn(src + " changed since the hybrid was stitched (sha256 differs)");
      }
      j["models"].push_back(evaluate_file(src, d, a.batch, group.get()));
      j["models"].back()["role"] = std::string(part) == "head" ? "mobile (head source)" : "server (tail source)";
    }
  }
  if (group && group->rank() != 0) return;  // rank 0 reports
  if (group) j["ranks"] = group->world();
  if (a.json) {
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("%s, %s split: %lld examples\n", a.data.c_str(), a.split.c_str(), static_cast<long long>(d.size()));
  std::vector<std::vector<std::string>> rows;
  char buf[64];
  for (const auto& m : j["models"]) {
    std::vector<std::string> r{m["role"], m["model"]};
    std::snprintf(buf, sizeof buf, "%.2f%%", 100 * m["top1"].get<double>());
    r.push_back(buf);
    std::snprintf(buf, sizeof buf, "%.2f%%", 100 * m["top5"].get<double>());
    r.push_back(buf);
    std::snprintf(buf, sizeof buf, "%.1f", m["seconds"].get<double>());
    r.push_back(buf);
    rows.push_back(r);
  }
  print_table({"Role", "Model", ">Top-1", ">Top-5", ">Seconds"}, rows);
  const auto& first = j["models"][0];
  std::printf("\nPer-class top-1 and confusion matrix of %s (rows: true class, columns: predicted):\n",
              a.model.c_str());
  for (size_t c = 0; c < first["per_class"].size(); ++c) {
    const std::string name = c < d.classes.size() ? d.classes[c] : std::to_string(c);
    std::printf("%3zu %-12s %6.2f%% |", c, name.c_str(), 100 * first["per_class"][c].get<double>());
    for (const auto& v : first["confusion"][c]) std::printf(" %5lld", static_cast<long long>(v.get<int64_t>()));
    std::printf("\n");
  }
}

}  // namespace

Command add_eval_command(CLI::App& root) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = root.add_subcommand("eval", "Accuracy of a classifier (and of a hybrid's source models)");
  app->add_option("model", args->model, "Model file: ONNX or Keras (HDF5, .keras, TF.js model.json, JSON)")->required();
  app->add_option("--data", args->data,
                  "fashion-mnist (default), an IDX directory, an image folder, or IMAGES.npy,LABELS.npy");
  app->add_option("--split", args->split, "train or test (default test)")->check(CLI::IsMember({"train", "test"}));
  app->add_option("--batch", args->batch, "Batch size (default 256)")->check(CLI::PositiveNumber);
  app->add_option("--limit", args->limit, "Only the first N examples")->check(CLI::PositiveNumber);
  app->add_flag("--no-sources", args->no_sources, "For a hybrid, do not evaluate its source models");
  app->add_flag("--json", args->json, "Machine-readable output");
  add_dist_options(app, &args->dist);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
