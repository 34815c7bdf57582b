#include "graft/train/losses.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "graft/core/error.h"

namespace graft::train {
namespace {

TEST(LossesTest, HandComputedValues) {
  // Two equal logits: cross-entropy ln 2.
  EXPECT_NEAR(ce_loss(at::zeros({1, 2}), at::zeros({1}, at::kLong)).item<double>(), std::log(2.0), 1e-6);
  // MSE of (1, 2) against (0, 0): (1 + 4) / 2.
  EXPECT_NEAR(feature_loss(at::tensor(std::vector<float>{1, 2}), at::zeros({2})).item<double>(), 2.5, 1e-6);
  // Teacher (ln 3, 0) -> p = (0.75, 0.25); student uniform: KL = 0.75 ln 1.5 + 0.25 ln 0.5.
  at::Tensor teacher = at::tensor(std::vector<float>{static_cast<float>(std::log(3.0)), 0.0f}).reshape({1, 2});
  at::Tensor student = at::zeros({1, 2});
  EXPECT_NEAR(kd_loss(student, teacher, 1.0).item<double>(), 0.75 * std::log(1.5) + 0.25 * std::log(0.5), 1e-6);
  // At T = 2: p = (sqrt 3, 1) / (sqrt 3 + 1), times T^2 = 4.
  const double a = std::sqrt(3.0) / (std::sqrt(3.0) + 1), b = 1 - a;
  EXPECT_NEAR(kd_loss(student, teacher, 2.0).item<double>(), 4 * (a * std::log(2 * a) + b * std::log(2 * b)), 1e-6);
  // Identical logits: no divergence.
  EXPECT_NEAR(kd_loss(teacher, teacher, 3.0).item<double>(), 0.0, 1e-7);
}

TEST(LossesTest, ParseLoss) {
  EXPECT_EQ(parse_loss("ce"), (std::map<std::string, double>{{"ce", 1.0}}));
  EXPECT_EQ(parse_loss("ce:1,feature:0.5,kd:2"),
            (std::map<std::string, double>{{"ce", 1.0}, {"feature", 0.5}, {"kd", 2.0}}));
  for (const char* bad : {"", "mse", "ce:x", "ce:-1", "kd:1.5x"}) EXPECT_THROW(parse_loss(bad), Error) << bad;
}

}  // namespace
}  // namespace graft::train

#include "graft/train/lsq.h"

namespace graft::train {
namespace {

TEST(LsqTest, RecoversAKnownLinearMap) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({2000, 6});
  const at::Tensor w = at::randn({6, 4});
  const at::Tensor b = at::randn({4});
  const at::Tensor t = at::matmul(x, w) + b;
  auto [w_fit, b_fit] = fit_linear(x, t, 1e-9);
  EXPECT_LT((w_fit - w).abs().max().item<double>(), 1e-4);
  EXPECT_LT((b_fit - b).abs().max().item<double>(), 1e-4);
  // With noise it is still the least-squares solution: no other W does better.
  const at::Tensor noisy = t + at::randn({2000, 4}) * 0.1;
  auto [wn, bn] = fit_linear(x, noisy, 1e-9);
  const double best = (at::matmul(x, wn) + bn - noisy).pow(2).sum().item<double>();
  EXPECT_LE(best, (at::matmul(x, w) + b - noisy).pow(2).sum().item<double>());
}

}  // namespace
}  // namespace graft::train
