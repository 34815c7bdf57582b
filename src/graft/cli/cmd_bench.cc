// graft bench MODEL.onnx — inference latency like onnxruntime_perf_test or trtexec: load once,
// warm up, time single runs, report median / p90 / p99 latency, images/s and peak RSS.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/exec/session.h"
#include "graft/ir/onnx_io.h"

namespace graft::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::vector<std::string> input_shapes;
  int64_t batch = 1, runs = 100, warmup = 10;
  int threads = 0;
  bool json = false, no_optimize = false, no_onednn = false, profile = false;
};

// Per-step times summed over the timed runs (every run of one program has the same steps).
struct Profile {
  std::vector<exec::StepTime> steps;
  int64_t runs = 0;

  void add(const std::vector<exec::StepTime>& run) {
    if (steps.size() != run.size()) {  // the first run, or another program: start over
      steps = run;
      runs = 1;
      return;
    }
    for (size_t i = 0; i < run.size(); ++i) steps[i].ms += run[i].ms;
    ++runs;
  }
  double mean(size_t i) const { return steps[i].ms / static_cast<double>(std::max<int64_t>(runs, 1)); }
  double total() const {
    double t = 0;
    for (size_t i = 0; i < steps.size(); ++i) t += mean(i);
    return t;
  }
  // op -> {mean ms per run, steps}
  std::map<std::string, std::pair<double, int>> by_op() const {
    std::map<std::string, std::pair<double, int>> ops;
    for (size_t i = 0; i < steps.size(); ++i) {
      ops[steps[i].op].first += mean(i);
      ops[steps[i].op].second++;
    }
    return ops;
  }
};

void print_profile(const Profile& p, size_t top) {
  const double total = p.total();
  std::printf("profile: %zu steps, %.3f ms per run in steps (mean of %lld runs)\n", p.steps.size(), total,
              static_cast<long long>(p.runs));
  auto ops = p.by_op();
  std::vector<std::pair<std::string, std::pair<double, int>>> by_op(ops.begin(), ops.end());
  std::sort(by_op.begin(), by_op.end(), [](const auto& x, const auto& y) { return x.second.first > y.second.first; });
  std::printf("  %-24s %6s %10s %6s\n", "op", "steps", "ms", "%");
  for (const auto& [op, v] : by_op) {
    std::printf("  %-24s %6d %10.3f %5.1f%%\n", op.c_str(), v.second, v.first, 100.0 * v.first / total);
  }
  std::vector<size_t> order(p.steps.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return p.steps[x].ms > p.steps[y].ms; });
  order.resize(std::min(order.size(), top));
  std::printf("  slowest steps:\n  %-40s %-18s %-26s %10s %6s\n", "node", "op", "kernel", "ms", "%");
  for (size_t i : order) {
    const auto& st = p.steps[i];
    std::printf("  %-40s %-18s %-26s %10.3f %5.1f%%\n", st.node.c_str(), st.op.c_str(), st.kernel.c_str(), p.mean(i),
                100.0 * p.mean(i) / total);
  }
}

nlohmann::json profile_json(const Profile& p) {
  nlohmann::json steps = nlohmann::json::array(), ops = nlohmann::json::object();
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const auto& st = p.steps[i];
    steps.push_back({{"node", st.node}, {"op", st.op}, {"kernel", st.kernel}, {"ms", p.mean(i)}});
  }
  for (const auto& [op, v] : p.by_op()) ops[op] = {{"ms", v.first}, {"steps", v.second}};
  return {{"runs", p.runs}, {"total_ms", p.total()}, {"ops", ops}, {"steps", steps}};
}

// A random tensor for every graph input, with the batch set and the dtype declared.
exec::TensorMap random_inputs(const ir::Graph& g, const std::string& model, int64_t batch) {
  exec::TensorMap inputs;
  for (const auto& name : g.inputs) {
    const ir::Value& v = g.value(name);
    const std::vector<int64_t> sizes = input_sizes(g, model, name, batch);
    if (v.dtype == ir::kFloat || v.dtype == ir::kUndefined) {
      inputs[name] = at::rand(sizes);
    } else if (v.dtype == ir::kInt64) {
      inputs[name] = at::zeros(sizes, at::kLong);
    } else {
      throw Error(model + ": input '" + name + "' is " + ir::dtype_name(v.dtype) + "; graft bench feeds float32 or int64");
    }
  }
  return inputs;
}

void run(const BenchArgs& a) {
  if (a.threads > 0) at::set_num_threads(a.threads);
  const auto t_load = std::chrono::steady_clock::now();
  ir::Graph g = load_model(a.model, a.input_shapes, a.batch);
  exec::SessionOptions so;
  so.optimize = !a.no_optimize;
  so.onednn = !a.no_onednn;
  const exec::TensorMap inputs = random_inputs(g, a.model, a.batch);
  exec::Session session(std::move(g), so, a.model);
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();
  for (int64_t i = 0; i < a.warmup; ++i) session.run(inputs);
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(a.runs));
  Profile profile;
  std::vector<exec::StepTime> steps;
  exec::RunOptions ro;
  if (a.profile) ro.profile = &steps;
  for (int64_t i = 0; i < a.runs; ++i) {
    steps.clear();
    const auto t0 = std::chrono::steady_clock::now();
    session.run(inputs, {}, ro);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (a.profile) profile.add(steps);
  }
  std::sort(ms.begin(), ms.end());
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double median = percentile(ms, 0.5), p90 = percentile(ms, 0.9), p99 = percentile(ms, 0.99);
  const double images_per_s = 1000.0 * static_cast<double>(a.batch) / median;
  const double peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  const auto stats = session.engine_stats();
  const std::string kernels = stats ? "onednn" : "reference";
  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"batch", a.batch}, {"threads", at::get_num_threads()},
                              {"runs", a.runs}, {"warmup", a.warmup}, {"optimized", !a.no_optimize},
                              {"load_ms", load_ms}, {"median_ms", median}, {"p90_ms", p90}, {"p99_ms", p99},
                              {"min_ms", ms.front()}, {"max_ms", ms.back()}, {"images_per_s", images_per_s},
                              {"peak_rss_mb", peak_rss_mb}, {"kernels", kernels}};
    if (stats) {
      j["onednn_nodes"] = stats->onednn_nodes;
      j["reference_nodes"] = stats->reference_nodes;
      j["folded_nodes"] = stats->folded_nodes;
      j["reference_ops"] = stats->reference_ops;
      int slow = 0;
      for (const auto& [op, n] : stats->reference_kernel_ops) slow += n;
      j["reference_kernels"] = slow;
      j["reference_kernel_ops"] = stats->reference_kernel_ops;
      j["reorders"] = stats->reorders;
      j["arena_mb"] = static_cast<double>(stats->arena_bytes) / (1024.0 * 1024.0);
    }
    if (a.profile) j["profile"] = profile_json(profile);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s: batch %lld, %d thread(s), %lld runs after %lld warm-up%s\n", a.model.c_str(),
              static_cast<long long>(a.batch), at::get_num_threads(), static_cast<long long>(a.runs),
              static_cast<long long>(a.warmup), a.no_optimize ? ", graph passes off" : "");
  std::printf("load + compile %.1f ms\nlatency: median %.3f ms, p90 %.3f ms, p99 %.3f ms (min %.3f, max %.3f)\n",
              load_ms, median, p90, p99, ms.front(), ms.back());
  std::printf("throughput: %.1f images/s\npeak RSS: %.1f MB\n", images_per_s, peak_rss_mb);
  if (stats) {
    std::string ops;
    for (const auto& [op, n] : stats->reference_ops) ops += (ops.empty() ? "" : ", ") + op + " x" + std::to_string(n);
    std::printf("engine: oneDNN runs %d nodes, ATen %d%s; %d layout reorders per run; arena %.1f MB\n",
                stats->onednn_nodes, stats->reference_nodes, ops.empty() ? "" : (" (" + ops + ")").c_str(),
                stats->reorders, static_cast<double>(stats->arena_bytes) / (1024.0 * 1024.0));
    std::string slow;
    for (const auto& [op, n] : stats->reference_kernel_ops) slow += (slow.empty() ? "" : ", ") + op + " x" + std::to_string(n);
    if (!slow.empty()) std::printf("oneDNN reference (slow) kernels: %s\n", slow.c_str());
  } else {
    std::printf("engine: reference ATen kernels\n");
  }
  if (a.profile) print_profile(profile, 25);
}

}  // namespace

Command add_bench_command(CLI::App& root) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* app = root.add_subcommand("bench", "Inference latency and throughput of a model on random inputs");
  app->add_option("model", args->model, "Model file: ONNX or Keras (HDF5, .keras, TF.js model.json, JSON)")->required();
  app->add_option("--batch", args->batch, "Batch size (sets a symbolic batch dimension; default 1)")
      ->check(CLI::PositiveNumber);
  app->add_option("--threads", args->threads, "Intra-op threads (default: the global --threads, else all cores)")
      ->check(CLI::PositiveNumber);
  app->add_option("--runs", args->runs, "Timed runs (default 100)")->check(CLI::PositiveNumber);
  app->add_option("--warmup", args->warmup, "Untimed runs first (default 10)")->check(CLI::NonNegativeNumber);
  add_input_shape_option(app, &args->input_shapes);
  app->add_flag("--no-optimize", args->no_optimize, "Run the graph as written (no graph passes, no oneDNN)");
  app->add_flag("--no-onednn", args->no_onednn, "Graph passes, then the reference ATen kernels (not oneDNN)");
  app->add_flag("--profile", args->profile,
                "Time every step (node or layout reorder) of the timed runs; print per-op totals and the slowest steps");
  app->add_flag("--json", args->json, "One JSON object: median_ms, p90_ms, p99_ms, images_per_s, peak_rss_mb, …");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
