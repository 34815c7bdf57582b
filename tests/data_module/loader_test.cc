#include "graft/data/loader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "graft/core/error.h"

namespace graft::data {
namespace {

Dataset tiny(int64_t n) {
  Dataset d;
  d.images = at::arange(n * 8 * 8, at::kLong).remainder(251).to(at::kByte).reshape({n, 8, 8, 1});
  d.labels = at::arange(n, at::kLong).remainder(3);
  d.origin = "tiny";
  return d;
}

Preprocess plain() {
  Preprocess p;
  p.height = p.width = 8;
  p.channels = 1;
  p.mean = {0};
  p.std = {1};
  return p;
}

TEST(LoaderTest, CoversTheEpochOnceInTheSeededOrder) {
  const Dataset d = tiny(70);
  LoaderOptions o;
  o.batch = 16;
  o.seed = 5;
  o.epoch = 2;
  Loader loader(d, plain(), o);
  EXPECT_EQ(loader.batches(), 5);
  std::vector<at::Tensor> seen;
  while (auto b = loader.next()) {
    EXPECT_TRUE(at::equal(b->labels, d.labels.index_select(0, b->indices)));
    EXPECT_TRUE(at::equal(b->inputs, preprocess_batch(d.images.index_select(0, b->indices), plain())));
    seen.push_back(b->indices);
  }
  const at::Tensor all = at::cat(seen);
  EXPECT_TRUE(at::equal(all, epoch_order(70, 5, 2, true)));
  EXPECT_TRUE(at::equal(std::get<0>(at::sort(all)), at::arange(70, at::kLong)));
  EXPECT_FALSE(loader.next().has_value());
}

// DistributedSampler's semantics: equal shares, padded from the start, every world-th index.
TEST(LoaderTest, RanksTakeStridedEqualSharesOfTheSameOrder) {
  const at::Tensor order = epoch_order(70, 5, 2, true);
  std::vector<at::Tensor> shares;
  for (int r = 0; r < 4; ++r) {
    shares.push_back(shard_order(order, r, 4));
    EXPECT_EQ(shares.back().numel(), 18);  // ceil(70 / 4)
    EXPECT_EQ(shares.back()[0].item<int64_t>(), order[r].item<int64_t>());
    EXPECT_EQ(shares.back()[1].item<int64_t>(), order[r + 4].item<int64_t>());
  }
  // Together: every image, the first two twice (72 = 70 + 2 padding).
  const at::Tensor all = std::get<0>(at::sort(at::cat(shares)));
  EXPECT_EQ(all.numel(), 72);
  EXPECT_TRUE(at::equal(std::get<0>(at::unique_consecutive(all)), at::arange(70, at::kLong)));
  EXPECT_EQ(shares[2][17].item<int64_t>(), order[0].item<int64_t>());  // padding: order[70], order[71] = order[0], order[1]
  EXPECT_EQ(shares[3][17].item<int64_t>(), order[1].item<int64_t>());
  EXPECT_TRUE(at::equal(shard_order(order, 0, 1), order));
  EXPECT_EQ(shard_order(order.slice(0, 0, 2), 4, 5).numel(), 1);  // fewer images than ranks: repeated
  // The loader gives a rank its share, batch by batch.
  const Dataset d = tiny(70);
  LoaderOptions o;
  o.batch = 8;
  o.seed = 5;
  o.epoch = 2;
  o.rank = 1;
  o.world = 4;
  Loader loader(d, plain(), o);
  EXPECT_EQ(loader.batches(), 3);
  std::vector<at::Tensor> seen;
  while (auto b = loader.next()) seen.push_back(b->indices);
  EXPECT_TRUE(at::equal(at::cat(seen), shares[1]));
}

TEST(LoaderTest, AugmentationIsSeededAndPrefetchDoesNotChangeIt) {
  const Dataset d = tiny(40);
  auto run = [&](int prefetch, uint64_t seed) {
    LoaderOptions o;
    o.batch = 8;
    o.seed = seed;
    o.augment = true;
    o.prefetch = prefetch;
    Loader loader(d, plain(), o);
    std::vector<at::Tensor> xs;
    while (auto b = loader.next()) xs.push_back(b->inputs);
    return at::cat(xs);
  };
  EXPECT_TRUE(at::equal(run(1, 3), run(4, 3)));
  EXPECT_FALSE(at::equal(run(2, 3), run(2, 4)));
}

TEST(LoaderTest, ErrorsReachTheCaller) {
  Dataset d = tiny(10);
  Preprocess bad = plain();
  bad.height = -1;  // resizing fails on the worker thread
  LoaderOptions o;
  o.batch = 4;
  Loader loader(d, bad, o);
  EXPECT_ANY_THROW(loader.next());
}

}  // namespace
}  // namespace graft::data
