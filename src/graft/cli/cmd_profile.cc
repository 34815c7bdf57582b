// graft profile MODEL -o PROFILE.json — what the model costs on this machine, node by node and
// cut point by cut point (graft/plan/profile.h), for graft plan. Run it once on the device and
// once on the server.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/data/image.h"
#include "graft/data/npy.h"
#include "graft/plan/profile.h"

namespace graft::cli {
namespace {

struct ProfileArgs {
  std::string model, output, image, input;
  std::vector<std::string> input_shapes;
  int64_t batch = 1, runs = 30, warmup = 5, seed = 0;
  int threads = 0;
};

void run(const ProfileArgs& a) {
  if (a.threads > 0) at::set_num_threads(a.threads);
  if (!a.image.empty() && !a.input.empty()) throw Error("give --image or --input, not both");
  ir::Graph graph = load_model(a.model, a.input_shapes, a.batch);
  const ir::Graph per_image = load_model(a.model, a.input_shapes, 1, /*weights=*/false);
  const std::string input_name = plan::single_input(graph, a.model);
  const std::vector<int64_t> sizes = input_sizes(graph, a.model, input_name, a.batch);
  plan::ProfileOptions o;
  o.model_path = a.model;
  o.runs = a.runs;
  o.warmup = a.warmup;
  at::Tensor x, image;
  if (!a.image.empty()) {
    const data::Preprocess pre = data::Preprocess::from_metadata(graph, a.model);
    image = data::read_image(a.image, pre.channels);
    x = data::preprocess(image, pre).unsqueeze(0).expand(sizes).contiguous();
    o.image = &image;
    o.input_source = "image " + a.image;
  } else if (!a.input.empty()) {
    x = data::read_npy(a.input).to(at::kFloat);
    if (x.sizes().vec() != sizes) {
      throw Error(a.input + ": shape " + c10::str(x.sizes()) + " is not input '" + input_name + "''s " +
                  c10::str(at::IntArrayRef(sizes)) + " (--batch " + std::to_string(a.batch) + ")");
    }
    o.input_source = "npy " + a.input;
  } else {
    at::manual_seed(static_cast<uint64_t>(a.seed));
    x = at::rand(sizes);
  }
  const plan::Profile p = plan::measure(graph, per_image, x, o);
  write_file_atomic(a.output, to_json(p).dump(1) + "\n");
  const plan::CutTime* cheapest = nullptr;
  for (const auto& c : p.cuts) {
    if (cheapest == nullptr || c.wire.at("fp32").bytes < cheapest->wire.at("fp32").bytes) cheapest = &c;
  }
  std::printf("%s: batch %lld, %d thread(s) on %s (%d CPUs): %.3f ms (p90 %.3f), %zu cut points",
              a.model.c_str(), static_cast<long long>(p.batch), p.machine.threads, p.machine.cpu.c_str(),
              p.machine.cores, p.total_ms, p.p90_ms, p.cuts.size());
  if (cheapest != nullptr) {
    std::printf("; the smallest is %s (%s fp32 bytes per batch)", cheapest->tensor.c_str(),
                thousands(cheapest->wire.at("fp32").bytes).c_str());
  }
  std::printf("\nwritten to %s\n", a.output.c_str());
}

}  // namespace

Command add_profile_command(CLI::App& root) {
  auto args = std::make_shared<ProfileArgs>();
  CLI::App* app = root.add_subcommand(
      "profile", "Per-node and per-cut-point latency, bytes and MACs of a model on this machine (for graft plan)");
  app->add_option("model", args->model, "Model file: ONNX or Keras")->required();
  app->add_option("-o,--output", args->output, "The profile to write (JSON)")->required();
  app->add_option("--batch", args->batch, "Batch size (default 1)")->check(CLI::PositiveNumber);
  app->add_option("--threads", args->threads, "Intra-op threads (default: the global --threads, else all cores)")
      ->check(CLI::PositiveNumber);
  app->add_option("--runs", args->runs, "Timed runs (default 30)")->check(CLI::PositiveNumber);
  app->add_option("--warmup", args->warmup, "Untimed runs first (default 5)")->check(CLI::NonNegativeNumber);
  app->add_option("--image", args->image,
                  "An input image (preprocessed as the model's metadata says): the codecs' bytes and the "
                  "PNG row are measured on real data (default: random input)");
  app->add_option("--input", args->input, "x.npy: the input batch, preprocessed (default: random input)");
  app->add_option("--seed", args->seed, "Seed of the random input (default 0)");
  add_input_shape_option(app, &args->input_shapes);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
