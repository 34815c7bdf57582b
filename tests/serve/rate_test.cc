// The client's bandwidth limit: a token bucket, on a clock the test moves.
#include "graft/serve/rate.h"

#include <gtest/gtest.h>

#include <chrono>

namespace graft::serve {
namespace {

using std::chrono::milliseconds;

TEST(TokenBucketTest, WithoutBurstEveryMessageWaitsItsSize) {
  TokenBucket b(1000.0, 0);  // 1000 bytes/s
  const auto t0 = TokenBucket::Clock::now();
  EXPECT_NEAR(b.take(500, t0), 0.5, 1e-6);
  // Half a second later the debt is paid; the next message waits for itself alone.
  EXPECT_NEAR(b.take(250, t0 + milliseconds(500)), 0.25, 1e-6);
  // Sent at once after it: it queues behind the 250 still owed.
  EXPECT_NEAR(b.take(250, t0 + milliseconds(500)), 0.5, 1e-6);
  // A long idle spell earns nothing beyond the (zero) burst.
  EXPECT_NEAR(b.take(100, t0 + milliseconds(60000)), 0.1, 1e-6);
}

TEST(TokenBucketTest, ABurstIsFreeOnceThenTheRateRules) {
  TokenBucket b(1000.0, 300);
  const auto t0 = TokenBucket::Clock::now() + milliseconds(10);  // the bucket starts full
  EXPECT_EQ(b.take(300, t0), 0.0);
  EXPECT_NEAR(b.take(100, t0), 0.1, 1e-6);
  // 1.1 s later the 100 owed is paid and the bucket is full again (300, not the 1000 earned).
  EXPECT_EQ(b.take(200, t0 + milliseconds(1100)), 0.0);
  EXPECT_EQ(b.take(100, t0 + milliseconds(1100)), 0.0);
  EXPECT_NEAR(b.take(100, t0 + milliseconds(1100)), 0.1, 1e-6);
}

TEST(TokenBucketTest, AcquireSleeps) {
  TokenBucket b(100000.0, 0);
  const auto t0 = std::chrono::steady_clock::now();
  b.acquire(5000);  // 50 ms
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(49));
}

}  // namespace
}  // namespace graft::serve
