// graft::search — which hybrid of two models to build (`graft search`).
//
// The candidates are the cut pairs (a cut point of the mobile model, a cut point of the server
// model) whose shapes the adapter designer can join, times the adapter families asked for. Cut
// points that cost the same on both sides (a convolution, its BatchNorm and its activation) count
// once, as the last of them; pairs dominated on (device MACs, split bytes) by another pair are
// dropped before anything is trained. The rest are trained with both networks frozen and scored
// on a held-out part of the training set, by successive halving: every candidate first sees
// `min_images` images; after each rung the best 1/eta (by Pareto rank on accuracy, device MACs and
// split bytes, then accuracy) go on to eta times as many images in all, up to `max_images`: they
// continue from their weights on the images that adds (or, with `restart`, train again from
// scratch on all of them). Training reads shared feature caches: one head pass per mobile cut and
// one teacher pass per server cut, over the images a rung needs; when a rung's caches would
// exceed `cache_memory`, its candidates are taken in groups whose caches fit (a candidate whose
// own tensors do not fit trains without a cache, running both models on every batch).
//
// On several ranks (Options::group), a rung's candidates are trained round-robin, `world` at a time.
//
// The state is the result file itself, rewritten atomically after every evaluation; `resume`
// continues a search from it (same models, data and settings), skipping what is done. Training
// is deterministic for a seed and thread count, so a resumed search reaches the same result.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "graft/data/dataset.h"
#include "graft/ir/graph.h"

namespace graft::train {
class ProcessGroup;
}

namespace graft::search {

struct Options {
  std::vector<std::string> adapters = {"conv", "bottleneck"};  // designer families
  std::string loss = "ce:1,kd:1,feature:1";
  int64_t holdout = 5000;       // images of the training split kept for scoring
  int64_t min_images = 2048;    // images seen by every candidate in the first rung
  int64_t max_images = 0;       // images seen in the last rung; 0: two passes over the pool
  double eta = 3;               // rung growth and the fraction 1/eta promoted
  bool restart = false;         // survivors train from scratch each rung instead of continuing
  int64_t cache_memory = 0;     // bytes of feature caches at most; 0: a third of physical memory
  int64_t batch = 32;           // small: a rung of 2,048 images is 64 steps, not 16
  double lr = 0.05;
  // The gradient norm is clipped to this (0: not clipped). A fresh adapter's first gradients,
  // back through the frozen server, are hundreds of times larger than later ones; unclipped, the
  // first steps throw it far off and a short rung scores near chance.
  double clip = 1.0;
  uint64_t seed = 1;
  double budget_seconds = 0;    // 0: no limit; otherwise no evaluation starts after it
  std::string state;            // the result file, rewritten after every evaluation
  bool resume = false;          // continue from `state`
  // Optional limits on the candidates: only these cut points (layer or tensor names; empty:
  // every distinct cut point), only candidates sending at most this many bytes (0: any).
  std::vector<std::string> mobile_cuts, server_cuts;
  int64_t max_split_bytes = 0;
  // When set, the front's most accurate hybrid within the limits (0: none) is written here (ONNX,
  // trained as its last evaluation; atomically) at the end of the search.
  std::string write_best;
  int64_t best_max_split_bytes = 0, best_max_device_macs = 0;
  std::function<void(const std::string&)> progress;  // one line per event (rank 0's only)
  // Data-parallel ranks (graft/train/distributed.h): every rank runs the same search; a rung's
  // candidates, the baselines and the front's test scores are taken round-robin, one per rank at
  // a time, and every rank gets every result (scores and the adapter's tensors). Each rank holds
  // only its own candidates' caches (cache_memory is per rank). Rank 0 alone writes `state` and
  // `write_best`. The result is the one-process result with the same threads per process.
  train::ProcessGroup* group = nullptr;
};

struct Model {
  const ir::Graph* graph = nullptr;  // with weights
  std::string path;
};

struct Evaluation {
  int rung = 0;
  int64_t images = 0;     // images seen in training, all rungs so far when continuing
  double accuracy = 0;    // top-1 on the held-out images
  double seconds = 0;     // training and scoring
};

struct Candidate {
  int id = 0;
  std::string mobile_cut, server_cut;  // tensors
  std::string family, adapter;         // the adapter's family and spec
  int64_t adapter_params = 0;
  int64_t device_macs = 0, server_macs = 0, split_bytes = 0;  // per image; bytes as float32
  std::string split_shape;                                     // "64x3x3"
  std::vector<Evaluation> evaluations;  // one per rung reached
  std::optional<double> test_accuracy;  // front points, when a test set is given
  const Evaluation* last() const { return evaluations.empty() ? nullptr : &evaluations.back(); }
};

struct Result {
  std::vector<Candidate> candidates;
  std::vector<int> front;          // ids: non-dominated on (accuracy, device MACs, split bytes)
  int pairs_joinable = 0, pairs_kept = 0;
  double mobile_holdout = 0, server_holdout = 0;  // the two models on the held-out images
  std::optional<double> mobile_test, server_test;
  int64_t mobile_macs = 0, server_macs = 0, train_images = 0, holdout_images = 0;
  int rungs_done = 0;
  int64_t cache_bound = 0, cache_peak = 0;  // bytes: the cache bound used and the most held (per rank)
  int ranks = 1;                   // processes that ran the search (Options::group)
  int best_written = -1;           // the candidate written to Options::write_best
  bool complete = false;           // false: stopped by the budget (resumable)
  double seconds = 0;
  nlohmann::json to_json(const nlohmann::json& settings) const;
};

// Runs (or resumes) the search. `test`: when given, the front points and both models are also
// scored on it. Errors name the model, cut or setting at fault.
Result run(const Model& mobile, const Model& server, const data::Dataset& train, const data::Dataset* test,
           const Options& options);

// The settings a result records (and `resume` checks): models' sha256, data, options.
nlohmann::json settings_json(const Model& mobile, const Model& server, const data::Dataset& train,
                             const Options& options);

// Rebuilds candidate `c` of a search and trains it as its evaluations did (same images, seed and
// loss, rung after rung when continuing): the hybrid `--write-best` writes.
ir::Graph build(const Model& mobile, const Model& server, const data::Dataset& train, const Candidate& c,
                const Options& options);

// The front point with the best held-out accuracy within the limits (0: none); nullptr if none.
const Candidate* best(const Result& r, int64_t max_split_bytes = 0, int64_t max_device_macs = 0);

}  // namespace graft::search
