// graft train MODEL.onnx --data … -o OUT.onnx — train the adapter (or --train all|REGEX).
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/train/evaluate.h"
#include "graft/train/lsq.h"
#include "graft/train/distributed.h"
#include "graft/train/trainer.h"

namespace graft::cli {
namespace {

struct TrainArgs {
  std::string model, output, data = "fashion-mnist";
  int64_t limit = 0;
  bool eval = false;
  train::TrainOptions o;
  bool no_cache = false, quiet = false;
  std::string init;
  DistArgs dist;
  // The gradient norm is clipped to 1 unless --clip says otherwise: a freshly stitched adapter's
  // first gradients, back through the frozen server, have norms in the hundreds (docs/SEARCH.md),
  // and unclipped they throw the adapter far off in the first steps.
  TrainArgs() { o.optimizer.clip_norm = 1; }
};

// The test split's top-1 and top-5; with several ranks each scores every world-th image and the
// counts are summed.
train::Evaluation evaluate_sharded(const ir::Graph& g, const TrainArgs& a, const data::Preprocess& p) {
  const data::Dataset test = data::open_dataset(a.data, "test");
  const int rank = a.o.group ? a.o.group->rank() : 0, world = a.o.group ? a.o.group->world() : 1;
  exec::Session s(g, {}, a.output);
  const train::Evaluation e = train::evaluate(s, train::eval_shard(test, rank, world), p);
  return a.o.group ? train::all_reduce(e, *a.o.group) : e;
}

void run(TrainArgs a) {
  // Data-parallel when the launcher (torchrun, Slurm) or the user says there are several ranks.
  a.o.group = connect_dist(a.dist);
  if (a.o.group) {
    if (!a.init.empty()) throw Error("--init lsq with several ranks: initialise in a one-process run first");
    // torchrun restarted the workers (--max_restarts): continue from the last checkpoint.
    const int restart = a.o.group->restart();
    if (restart > 0 && a.o.resume.empty() && !a.o.checkpoint.empty() && std::filesystem::exists(a.o.checkpoint)) {
      a.o.resume = a.o.checkpoint;
      if (a.o.group->rank() == 0) {
        std::fprintf(stderr, "graft: restart %d: resuming from %s\n", restart, a.o.checkpoint.c_str());
      }
    }
  }
  const int rank = a.o.group ? a.o.group->rank() : 0, world = a.o.group ? a.o.group->world() : 1;
  ir::Graph g = read_model(a.model);
  const data::Preprocess p = data::Preprocess::from_metadata(g, a.model);
  const data::Dataset d = data::head(data::open_dataset(a.data, "train"), a.limit);
  if (a.init == "lsq") {
    const int n = train::lsq_init(g, d, p, a.o.teacher, 512, [](const std::string& m) { return read_model(m); });
    std::printf("least-squares initialised %d adapter convolution(s) from %lld images\n", n,
                static_cast<long long>(std::min<int64_t>(512, d.size())));
  }
  a.o.cache = !a.no_cache;
  a.o.read_model = [](const std::string& m) { return read_model(m); };
  a.o.progress = !a.quiet;
  const train::TrainResult r = train::fit(g, d, p, a.o);
  // A classifier trained on named classes carries their names (graft run/infer print them).
  const auto& out_shape = g.value(g.outputs.at(0)).shape;
  if (!g.get_metadata(ir::kMetaLabels) && !d.classes.empty() && out_shape && !out_shape->empty() &&
      out_shape->back().value == static_cast<int64_t>(d.classes.size())) {
    ir::set_metadata_string_list(g, ir::kMetaLabels, d.classes);
  }
  if (rank != 0) {
    if (a.eval) evaluate_sharded(g, a, p);
    return;  // rank 0 writes the model and reports
  }
  ir::save(g, a.output);
  if (world > 1) {
    std::printf("%d ranks: %lld images per step (%lld per rank); all-reduced %.1f KiB per step in %.2f ms on rank 0\n",
                world, static_cast<long long>(a.o.batch * world), static_cast<long long>(a.o.batch),
                r.steps > 0 ? r.comm_bytes / 1024.0 / static_cast<double>(r.steps) : 0.0,
                r.steps > 0 ? 1000 * r.comm_seconds / static_cast<double>(r.steps) : 0.0);
  }
  std::printf("wrote %s: trained %zu initializers for %lld steps on %lld images in %.1f s (%.0f images/s%s); "
              "loss %s, final %.4f\n",
              a.output.c_str(), r.trained.size(), static_cast<long long>(r.steps), static_cast<long long>(d.size()),
              r.seconds, r.images_per_second, r.used_cache ? ", feature cache" : "", r.loss.c_str(),
              r.losses.empty() ? 0.0 : r.losses.back());
  if (a.eval) {
    const train::Evaluation e = evaluate_sharded(g, a, p);
    std::printf("test top-1 %.2f%%, top-5 %.2f%% (%lld images)\n", 100 * e.top1, 100 * e.top5,
                static_cast<long long>(e.count));
  }
}

}  // namespace

Command add_train_command(CLI::App& root) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* app = root.add_subcommand("train", "Train a model's adapter (or any initializers) on labelled data");
  app->add_option("model", args->model, "Model file, ONNX or Keras (usually a stitched hybrid)")->required();
  app->add_option("-o,--output", args->output, "The trained model")->required();
  app->add_option("--data", args->data, "fashion-mnist (default), an IDX directory, an image folder, or X.npy,Y.npy");
  app->add_option("--limit", args->limit, "Only the first N training examples")->check(CLI::PositiveNumber);
  app->add_option("--train", args->o.train, "adapter (graft.trainable; default), all, or a REGEX over initializer names");
  app->add_option("--loss", args->o.loss,
                  "ce, feature, kd, or a weighted sum such as ce:1,feature:1,kd:0.5; default auto: "
                  "ce:1,kd:1,feature:1 for a hybrid whose server model is at hand (--teacher or its tail source), else ce");
  app->add_option("--temperature", args->o.temperature, "Distillation temperature (default 4)")
      ->check(CLI::PositiveNumber);
  app->add_option("--teacher", args->o.teacher, "Server model for feature/kd (default: the hybrid's tail source)");
  app->add_option("--init", args->init, "lsq: least-squares initialisation of a linear adapter first")
      ->check(CLI::IsMember({"lsq"}));
  app->add_option("--epochs", args->o.epochs, "Epochs (default 1)")->check(CLI::PositiveNumber);
  app->add_option("--batch", args->o.batch, "Batch size (default 64)")->check(CLI::PositiveNumber);
  app->add_option("--optimizer", args->o.optimizer.kind, "sgd (default), adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  app->add_option("--lr", args->o.optimizer.lr, "Peak learning rate (default 0.05), cosine-decayed")->check(CLI::PositiveNumber);
  app->add_option("--momentum", args->o.optimizer.momentum, "SGD momentum (default 0.9)");
  app->add_flag("--nesterov", args->o.optimizer.nesterov, "Nesterov momentum");
  app->add_option("--weight-decay", args->o.optimizer.weight_decay, "Weight decay (decoupled for adamw)");
  app->add_option("--clip", args->o.optimizer.clip_norm, "Clip the gradient norm to this; 0: off (default 1)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--warmup", args->o.warmup, "Linear warm-up steps");
  app->add_option("--seed", args->o.seed, "Seed of shuffling and augmentation");
  app->add_flag("--augment", args->o.augment, "Random crop (padding 4) and horizontal flip");
  app->add_flag("--no-cache", args->no_cache, "Do not use the feature cache");
  app->add_option("--checkpoint", args->o.checkpoint, "Write a checkpoint here every epoch (+ .state)");
  app->add_option("--resume", args->o.resume, "Continue from this checkpoint");
  app->add_option("--log", args->o.log_jsonl, "Write one JSON line per step here");
  app->add_flag("--eval", args->eval, "Evaluate on the test split afterwards");
  app->add_flag("--no-progress", args->quiet, "No progress bar");
  add_dist_options(app, &args->dist);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
