// graft search --mobile A --server B [--data …] [--budget 30m] -o search.json — which hybrid of
// two models to build: cut pairs x adapter families, trained briefly by successive halving and
// scored on held-out training images; prints the Pareto front of accuracy vs device MACs vs
// split bytes and writes every candidate (graft/search/search.h).
#include <cctype>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/search/search.h"
#include "graft/train/distributed.h"

namespace graft::cli {
namespace {

struct SearchArgs {
  std::string mobile, server, data = "fashion-mnist", out, budget, write_best, adapters = "conv,bottleneck";
  std::string cache_memory;
  std::string mobile_cuts, server_cuts;
  search::Options o;
  DistArgs dist;
  int64_t limit = 0, test_limit = 0, best_bytes = 0, best_macs = 0;
  bool no_test = false, json = false;
};

// "30m", "90s", "1.5h", "600" (seconds) -> seconds.
double parse_budget(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  const double scale = unit.empty() || unit == "s" ? 1 : unit == "m" || unit == "min" ? 60 : unit == "h" ? 3600 : -1;
  if (used == 0 || scale < 0 || !(v > 0)) throw Error("--budget '" + text + "': give a duration such as 30m, 90s or 1.5h");
  return v * scale;
}

// "8G", "512M", "1.5GiB", "1000000" (bytes) -> bytes; K/M/G/T are powers of 1024.
int64_t parse_memory(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (const char* suffix : {"iB", "B"}) {
    const std::string s(suffix);
    if (unit.size() > s.size() && unit.compare(unit.size() - s.size(), s.size(), s) == 0) {
      unit.resize(unit.size() - s.size());
      break;
    }
  }
  double scale = -1;
  if (unit.empty() || unit == "B") scale = 1;
  if (unit == "K" || unit == "k") scale = 1024.0;
  if (unit == "M") scale = 1024.0 * 1024;
  if (unit == "G") scale = 1024.0 * 1024 * 1024;
  if (unit == "T") scale = 1024.0 * 1024 * 1024 * 1024;
  if (used == 0 || scale < 0 || !(v * scale >= 1) || v * scale > 9e18) {
    throw Error("--cache-memory '" + text + "': give a size such as 8G, 512M or 1.5GiB");
  }
  return static_cast<int64_t>(v * scale);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text + ",") {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      cur += c;
    }
  }
  return out;
}

std::string pct(double f) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * f);
  return b;
}

void run(SearchArgs& a) {
  a.o.adapters = split_list(a.adapters);
  for (const auto& f : a.o.adapters) {
    if (f != "conv" && f != "linear" && f != "bottleneck" && f != "resample") {
      throw Error("--adapters: unknown family '" + f + "' (conv, linear, bottleneck, resample)");
    }
  }
  if (a.o.adapters.empty()) throw Error("--adapters names no family");
  a.o.mobile_cuts = split_list(a.mobile_cuts);
  a.o.server_cuts = split_list(a.server_cuts);
  if (!a.budget.empty()) a.o.budget_seconds = parse_budget(a.budget);
  if (!a.cache_memory.empty()) a.o.cache_memory = parse_memory(a.cache_memory);
  if (a.o.resume && a.out.empty()) throw Error("--resume needs -o, the result file of the interrupted search");
  a.o.state = a.out;
  a.o.write_best = a.write_best;
  a.o.best_max_split_bytes = a.best_bytes;
  a.o.best_max_device_macs = a.best_macs;
  a.o.progress = [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  };
  const std::shared_ptr<train::ProcessGroup> group = connect_dist(a.dist);
  a.o.group = group.get();
  const ir::Graph mobile_graph = read_model(a.mobile), server_graph = read_model(a.server);
  const search::Model mobile{&mobile_graph, a.mobile}, server{&server_graph, a.server};
  const data::Dataset train = data::head(data::open_dataset(a.data, "train"), a.limit);
  std::optional<data::Dataset> test;
  if (!a.no_test) test = data::head(data::open_dataset(a.data, "test"), a.test_limit);
  const search::Result r = search::run(mobile, server, train, test ? &*test : nullptr, a.o);
  if (group && group->rank() != 0) return;  // rank 0 reports

  if (a.json) {
    std::printf("%s\n", r.to_json(search::settings_json(mobile, server, train, a.o)).dump().c_str());
  } else {
    std::printf("%d cut pairs can be joined; %d kept (not dominated on device MACs and split bytes); %zu candidates; "
                "%d rung(s) in %.0f s%s\n",
                r.pairs_joinable, r.pairs_kept, r.candidates.size(), r.rungs_done, r.seconds,
                r.complete ? "" : " (stopped by --budget: --resume continues)");
    std::printf("mobile: %s held-out%s, %s MACs; server: %s held-out%s, %s MACs\n\n", pct(r.mobile_holdout).c_str(),
                r.mobile_test ? (", " + pct(*r.mobile_test) + " test").c_str() : "", thousands(r.mobile_macs).c_str(),
                pct(r.server_holdout).c_str(), r.server_test ? (", " + pct(*r.server_test) + " test").c_str() : "",
                thousands(r.server_macs).c_str());
    std::vector<int> front = r.front;
    std::sort(front.begin(), front.end(), [&](int x, int y) {
      return r.candidates[static_cast<size_t>(x)].device_macs < r.candidates[static_cast<size_t>(y)].device_macs;
    });
    std::vector<std::vector<std::string>> rows;
    for (int id : front) {
      const search::Candidate& c = r.candidates[static_cast<size_t>(id)];
      rows.push_back({std::to_string(id), c.mobile_cut, c.server_cut, c.family, pct(c.last()->accuracy),
                      c.test_accuracy ? pct(*c.test_accuracy) : "-", thousands(c.device_macs),
                      thousands(c.server_macs), thousands(c.split_bytes), thousands(c.last()->images)});
    }
    std::printf("Pareto front (held-out accuracy vs device MACs vs split bytes):\n");
    print_table({">#", "Mobile cut", "Server cut", "Adapter", ">Held-out", ">Test", ">Device MACs", ">Server MACs",
                 ">Split bytes", ">Images"},
                rows);
    if (!a.out.empty()) std::printf("\nWrote %s (every candidate; its adapters' specs)\n", a.out.c_str());
  }
}

}  // namespace

Command add_search_command(CLI::App& root) {
  auto args = std::make_shared<SearchArgs>();
  CLI::App* app = root.add_subcommand(
      "search", "Which hybrid to build: cut pairs x adapters, trained briefly (successive halving), Pareto front");
  // A repeated option (a script's default, then the user's) takes the last value.
  app->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app->add_option("--mobile", args->mobile, "The device-side model (its head is kept)")->required();
  app->add_option("--server", args->server, "The server-side model (its tail is kept)")->required();
  app->add_option("--data", args->data, "fashion-mnist (default), an IDX directory, an image folder, or X.npy,Y.npy");
  app->add_option("--limit", args->limit, "Only the first N training examples")->check(CLI::PositiveNumber);
  app->add_option("--test-limit", args->test_limit, "Only the first N test examples")->check(CLI::PositiveNumber);
  app->add_flag("--no-test", args->no_test, "Do not score the front and the two models on the test split");
  app->add_option("-o,--output", args->out, "The result (JSON), rewritten after every evaluation: the search's state");
  app->add_flag("--resume", args->o.resume, "Continue the interrupted search whose result is -o");
  app->add_option("--budget", args->budget, "Start no evaluation after this long: 30m, 90s, 1.5h (default none)");
  app->add_option("--adapters", args->adapters, "Adapter families to try (default conv,bottleneck)");
  app->add_option("--loss", args->o.loss, "Training loss (default ce:1,kd:1,feature:1; see graft train)");
  app->add_option("--holdout", args->o.holdout, "Training images held out for scoring (default 5000)");
  app->add_option("--min-images", args->o.min_images, "Images every candidate trains on first (default 2048)");
  app->add_option("--max-images", args->o.max_images, "Images of the last rung (default two passes over the pool)");
  app->add_option("--eta", args->o.eta, "Rung growth; the best 1/eta go on (default 3)");
  app->add_flag("--restart", args->o.restart,
                "Promoted candidates train again from scratch (default: they continue from their weights)");
  app->add_option("--cache-memory", args->cache_memory,
                  "Feature caches held at most: 8G, 512M (default a third of physical memory)");
  app->add_option("--batch", args->o.batch, "Batch size (default 32)");
  app->add_option("--lr", args->o.lr, "Learning rate, SGD with Nesterov momentum, cosine (default 0.05)");
  app->add_option("--clip", args->o.clip, "Clip the gradient norm to this; 0: off (default 1)");
  app->add_option("--seed", args->o.seed, "Seed of the held-out split, adapters and shuffling (default 1)");
  app->add_option("--mobile-cuts", args->mobile_cuts, "Only these mobile cut points (layers or tensors, comma-separated)");
  app->add_option("--server-cuts", args->server_cuts, "Only these server cut points (layers or tensors, comma-separated)");
  app->add_option("--max-split-bytes", args->o.max_split_bytes, "Only candidates sending at most N bytes per image");
  app->add_option("--write-best", args->write_best, "Write the front's most accurate hybrid (ONNX), trained");
  app->add_option("--best-max-split-bytes", args->best_bytes, "--write-best: the most accurate within N bytes/image");
  app->add_option("--best-max-device-macs", args->best_macs, "--write-best: the most accurate within N device MACs");
  app->add_flag("--json", args->json, "Print the result as JSON");
  add_dist_options(app, &args->dist);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
