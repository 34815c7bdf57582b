#include "graft/data/loader.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace graft::data {
namespace {

at::Tensor augment(const at::Tensor& x, at::Generator& gen) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  at::Tensor padded = at::constant_pad_nd(x, {4, 4, 4, 4}, 0);
  at::Tensor offsets = at::randint(0, 9, {n, 2}, gen, at::kLong);
  at::Tensor flips = at::rand({n}, gen) < 0.5;
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dy = offsets[i][0].item<int64_t>(), dx = offsets[i][1].item<int64_t>();
    at::Tensor crop = padded[i].slice(1, dy, dy + h).slice(2, dx, dx + w);
    out.push_back(flips[i].item<bool>() ? crop.flip({2}) : crop);
  }
  return at::stack(out);
}

at::Generator generator(uint64_t seed, int64_t epoch) {
  return at::make_generator<at::CPUGeneratorImpl>(seed * 1000003 + static_cast<uint64_t>(epoch));
}

}  // namespace

at::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  if (!shuffle) return at::arange(n, at::kLong);
  at::Generator gen = generator(seed, epoch);
  return at::randperm(n, gen, at::kLong);
}

at::Tensor shard_order(const at::Tensor& order, int rank, int world) {
  if (world <= 1) return order;
  const int64_t n = order.numel();
  const int64_t total = (n + world - 1) / world * world;
  at::Tensor padded = order;
  while (padded.numel() < total) {
    padded = at::cat({padded, order.slice(0, 0, std::min<int64_t>(n, total - padded.numel()))});
  }
  return padded.slice(0, rank, total, world).contiguous();
}

Loader::Loader(const Dataset& data, const Preprocess& p, LoaderOptions options)
    : data_(data), p_(p), o_(options) {
  const int64_t n = o_.world > 1 ? (data_.size() + o_.world - 1) / o_.world : data_.size();
  batches_ = (n + o_.batch - 1) / o_.batch;
  worker_ = std::thread([this] { produce(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void Loader::produce() {
  try {
    // The same generator draws the order and then the augmentation, batch by batch, so a
    // prefetching run draws exactly what a synchronous one would.
    at::Generator gen = generator(o_.seed, o_.epoch);
    const at::Tensor order = shard_order(
        o_.shuffle ? at::randperm(data_.size(), gen, at::kLong) : at::arange(data_.size(), at::kLong), o_.rank, o_.world);
    for (int64_t b = 0; b < batches_; ++b) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || static_cast<int>(ready_.size()) < o_.prefetch; });
        if (stop_) return;
      }
      Batch batch;
      batch.indices = order.slice(0, b * o_.batch, std::min((b + 1) * o_.batch, order.numel()));
      batch.inputs = preprocess_batch(data_.images.index_select(0, batch.indices), p_);
      if (o_.augment) batch.inputs = augment(batch.inputs, gen);
      batch.labels = data_.labels.index_select(0, batch.indices);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.push_back(std::move(batch));
        ++produced_;
      }
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  changed_.notify_all();
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (consumed_ == batches_) return std::nullopt;
  changed_.wait(lock, [&] { return !ready_.empty() || error_; });
  if (ready_.empty() && error_) std::rethrow_exception(error_);
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  ++consumed_;
  lock.unlock();
  changed_.notify_all();
  return b;
}

}  // namespace graft::data
