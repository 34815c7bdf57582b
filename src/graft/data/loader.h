// A threaded batch loader with prefetch: batches are gathered, preprocessed (and augmented) on a
// background thread while the caller trains on the previous ones. Order and augmentation are
// drawn from a generator seeded by (seed, epoch), so every run sees the same batches.
#pragma once

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "graft/data/dataset.h"

namespace graft::data {

struct Batch {
  at::Tensor indices;  // into the dataset
  at::Tensor inputs;   // preprocessed (and augmented)
  at::Tensor labels;
};

struct LoaderOptions {
  int64_t batch = 64;
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool shuffle = true;
  bool augment = false;  // random crop (padding 4) and horizontal flip
  int prefetch = 2;      // batches prepared ahead
  int rank = 0, world = 1;  // data-parallel training: this rank's share of each epoch (shard_order)
};

// The order of one epoch: a seeded permutation (or 0..n-1 without shuffling).
at::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// DistributedSampler's share of an epoch's `order` (the same on every rank): padded with its
// first indices to a multiple of `world`, then every world-th index from `rank`. Every rank's
// share has the same length, ceil(n / world).
at::Tensor shard_order(const at::Tensor& order, int rank, int world);

class Loader {
 public:
  Loader(const Dataset& data, const Preprocess& p, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch of this epoch, or nullopt at its end. Rethrows the producer's error.
  std::optional<Batch> next();
  int64_t batches() const { return batches_; }

 private:
  void produce();

  const Dataset& data_;
  Preprocess p_;
  LoaderOptions o_;
  int64_t batches_ = 0;
  std::deque<Batch> ready_;
  int64_t produced_ = 0, consumed_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread worker_;
};

}  // namespace graft::data
