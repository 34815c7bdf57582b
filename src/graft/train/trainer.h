// The trainer: fits a model's trainable initializers (by default the adapter of a hybrid, from
// graft.trainable) on a labelled dataset, both source networks frozen.
//
// Frozen nodes run in eval mode and keep no gradient state; only BatchNormalization nodes whose
// scale or bias train run in training mode. When nothing before the hybrid's head output trains
// and there is no augmentation, the head's outputs are computed once (the feature cache) and
// later steps run only adapter + tail. The same seed gives the same loss curve; checkpoints are
// written atomically at the end of every epoch with the optimiser state, and --resume continues
// exactly where the checkpoint left off.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/data/dataset.h"
#include "graft/ir/graph.h"
#include "graft/train/optimizer.h"

namespace graft::train {
class ProcessGroup;
}

namespace graft::train {

// The feature cache computed by the caller, for callers that train many hybrids on the same
// images (graft search: one head pass per mobile cut, one teacher pass per server cut). Rows are
// the dataset's images in order. `head`: the hybrid's head output (its graft.cut head tensor);
// `teacher`: the teacher's outputs by its own tensor names — its activations at the tail's cut
// (feature loss) and `teacher_logits` (kd loss).
struct Precomputed {
  at::Tensor head;
  std::string teacher_logits;
  std::map<std::string, at::Tensor> teacher;
};

struct TrainOptions {
  std::string train = "adapter";  // adapter | all | a regular expression over initializer names
  // Loss: ce (labels), feature (MSE between the adapter's output and the server model's own
  // activation at the tail's cut), kd (distillation from the server model's logits at
  // `temperature`), or a weighted sum such as "ce:1,kd:0.5". feature and kd need a hybrid;
  // the server model is its tail source (graft.cut), or `teacher` if given. "auto" (the default):
  // ce:1,kd:1,feature:1 for a stitched hybrid whose server model is at hand (`teacher`, a readable
  // tail source, or `precomputed`), else ce. TrainResult::loss says which.
  std::string loss = "auto";
  double temperature = 4.0;
  std::string teacher;
  // Reads the teacher (any model format the caller supports); empty: ir::load (ONNX).
  std::function<ir::Graph(const std::string&)> read_model;
  OptimizerOptions optimizer;
  int64_t epochs = 1;
  int64_t batch = 64;
  int64_t warmup = 0;             // linear warm-up steps before the cosine decay
  uint64_t seed = 0;
  bool augment = false;           // random crop (padding 4) and horizontal flip
  bool cache = true;              // use the feature cache when it is valid
  // Used in place of computing the feature cache (needs a frozen head, the cache and no
  // augmentation); the teacher model is then not read.
  std::shared_ptr<const Precomputed> precomputed;
  std::string checkpoint;         // MODEL file written each epoch (+ ".state")
  std::string resume;             // a checkpoint to continue from
  std::string log_jsonl;          // one JSON line per step
  bool progress = true;           // progress bar on stderr
  // Called after each epoch (and its checkpoint) with the number of epochs done.
  std::function<void(int64_t)> on_epoch_end;
  // Data-parallel training (distributed.h), when the group has more than one rank: rank 0's
  // trainable weights and BatchNorm statistics are broadcast first; each epoch's shuffled order is
  // the same on every rank and each takes its strided share, padded to equal length
  // (DistributedSampler), so `batch` is per rank; gradients are averaged over the ranks (one
  // bucketed all-reduce per step) and BatchNorm layers that train use the global batch's
  // statistics (SyncBatchNorm). The feature cache holds the rank's share of the epoch only. Rank 0
  // alone writes the log and checkpoints.
  std::shared_ptr<ProcessGroup> group;
};

struct TrainResult {
  std::vector<double> losses;  // per step, including steps before a resume's start
  int64_t steps = 0;
  double seconds = 0;
  double images_per_second = 0;
  bool used_cache = false;
  std::string loss;                  // the loss trained with ("auto" resolved)
  int64_t comm_bytes = 0;            // data-parallel: bytes all-reduced by this rank, and the time
  double comm_seconds = 0;
  std::vector<std::string> trained;  // initializer names
};

// Trains `model` in place (its initializers are updated).
TrainResult fit(ir::Graph& model, const data::Dataset& data, const data::Preprocess& p,
                const TrainOptions& options);

// The tensor holding a classifier's scores before any softmax (what cross-entropy and
// distillation read): the input of a final Softmax/LogSoftmax, else the first graph output.
std::string logits_of(const ir::Graph& model);

// The loss "auto" stands for with `model` and `options` (see TrainOptions::loss).
std::string auto_loss(const ir::Graph& model, const TrainOptions& options);

// The initializers `selection` (adapter | all | REGEX) picks in `model`; Error if none.
std::vector<std::string> select_trainable(const ir::Graph& model, const std::string& selection);

}  // namespace graft::train
