// graft::train's c10d wrapper: the environment's ranks, and two ranks in one process (threads) on
// loopback: broadcast, bucketed all-reduce, the differentiable sum, a rank that never joins. The
// trainer's use of it runs in tests/integration/distributed.sh (processes, torchrun).
#include "graft/train/distributed.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <thread>

#include "graft/core/error.h"

namespace graft::train {
namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

using Vars = std::vector<std::pair<std::string, std::string>>;

// Sets exactly these of the variables graft reads, and clears them again.
class Env {
 public:
  explicit Env(const Vars& vars) {
    clear();
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~Env() { clear(); }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

 private:
  static void clear() {
    for (const char* k : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS",
                          "SLURM_PROCID", "SLURM_LOCALID", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE",
                          "TORCHELASTIC_RESTART_COUNT"}) {
      ::unsetenv(k);
    }
  }
};

std::string error_of(const std::string& mode) {
  try {
    dist_env(mode);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DistributedTest, RanksComeFromTheEnvironment) {
  {
    Env e(Vars{});
    EXPECT_FALSE(dist_env("env").has_value());  // no WORLD_SIZE: one process
  }
  {
    Env e(Vars{{"WORLD_SIZE", "1"}});
    EXPECT_FALSE(dist_env("env").has_value());
  }
  {
    Env e(Vars{{"WORLD_SIZE", "4"}, {"RANK", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "node1"}, {"MASTER_PORT", "29500"},
           {"TORCHELASTIC_RUN_ID", "x"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "3"}});
    const auto d = dist_env("env");
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->rank, 2);
    EXPECT_EQ(d->world, 4);
    EXPECT_EQ(d->master_addr, "node1");
    EXPECT_EQ(d->master_port, 29500);
    EXPECT_TRUE(d->agent_store);
    EXPECT_EQ(d->restart, 3);
    EXPECT_EQ(d->source, "torchrun");
  }
  {
    Env e(Vars{{"SLURM_NTASKS", "2"}, {"SLURM_PROCID", "1"}, {"MASTER_ADDR", "n0"}, {"MASTER_PORT", "1234"}});
    const auto d = dist_env("slurm");
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->rank, 1);
    EXPECT_EQ(d->world, 2);
    EXPECT_EQ(d->source, "slurm");
  }
  {
    Env e(Vars{{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "1234"}});
    EXPECT_NE(error_of("env").find("MASTER_ADDR is not set"), std::string::npos);
  }
  {
    Env e(Vars{{"WORLD_SIZE", "2"}, {"RANK", "x"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}});
    EXPECT_NE(error_of("env").find("RANK='x' is not a whole number"), std::string::npos);
  }
  {
    Env e(Vars{{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}});
    EXPECT_NE(error_of("env").find("rank 2 is not below the world size 2"), std::string::npos);
  }
  {
    Env e(Vars{});
    EXPECT_NE(error_of("slurm").find("SLURM_NTASKS is not set"), std::string::npos);
    EXPECT_NE(error_of("mpi").find("--dist 'mpi'"), std::string::npos);
  }
}

DistEnv rank_env(int rank, int world, int port) {
  DistEnv e;
  e.rank = rank;
  e.world = world;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  return e;
}

// Runs `body(rank, port)` on two threads as ranks 0 and 1 of one world; fails the test with what
// a rank threw.
void two_ranks(const std::function<void(int rank, int port)>& body) {
  const int port = free_port();
  std::vector<std::string> errors(2);
  auto worker = [&](int rank) {
    try {
      body(rank, port);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(rank)] = e.what();
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
}

TEST(DistributedTest, TwoRanksBroadcastSumAndDifferentiate) {
  std::vector<at::Tensor> got(2), grads(2), big(2);
  two_ranks([&](int rank, int port) {
    auto g = ProcessGroup::connect(rank_env(rank, 2, port), 30);
    // Broadcast: rank 0's values everywhere.
    at::Tensor w = at::full({3, 2}, static_cast<float>(rank + 1));
    g->broadcast({w});
    got[static_cast<size_t>(rank)] = w;
    // All-reduce in several buckets (a 4-byte bucket limit: one tensor per bucket).
    at::Tensor a = at::full({5}, static_cast<float>(rank + 1)), b = at::full({2, 2}, 10.0f * (rank + 1));
    g->all_reduce_sum({a, b}, 4);
    big[static_cast<size_t>(rank)] = at::cat({a, b.reshape(-1)});
    // The differentiable sum: d/dx_r of sum_r' <replica_sum(x_r'), v_r'> is v_0 + v_1.
    at::Tensor x = at::full({4}, static_cast<float>(rank)).requires_grad_(true);
    at::Tensor v = at::arange(4, at::kFloat) * (rank + 1);
    at::Tensor s = g->replica_sum()(x);
    (s * v).sum().backward();
    grads[static_cast<size_t>(rank)] = x.grad().clone();
    EXPECT_TRUE(at::allclose(s.detach(), at::full({4}, 1.0f)));  // 0 + 1
    g->barrier();
    EXPECT_GT(g->take_stats().bytes, 0);
  });
  if (HasFatalFailure()) return;
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(at::equal(got[static_cast<size_t>(r)], at::full({3, 2}, 1.0f)));
    EXPECT_TRUE(at::equal(big[static_cast<size_t>(r)],
                          at::cat({at::full({5}, 3.0f), at::full({4}, 30.0f)})));
    EXPECT_TRUE(at::allclose(grads[static_cast<size_t>(r)], at::arange(4, at::kFloat) * 3));
  }
}

// all_gather: bytes of different lengths (one empty) from every rank, in rank order; and
// wait_for_ranks waits for a rank that is busy for longer than the timeout while it is alive.
TEST(DistributedTest, RanksGatherBytesAndWaitForABusyRank) {
  std::vector<std::vector<std::string>> got(2);
  two_ranks([&](int rank, int port) {
    auto g = ProcessGroup::connect(rank_env(rank, 2, port), 3);
    got[static_cast<size_t>(rank)] = g->all_gather(rank == 0 ? std::string("\0ab", 3) : std::string());
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(4500));  // > the 3 s timeout
    g->wait_for_ranks();
    const auto again = g->all_gather(std::string(100000, static_cast<char>('a' + rank)));
    EXPECT_EQ(again.at(0), std::string(100000, 'a'));
    EXPECT_EQ(again.at(1), std::string(100000, 'b'));
  });
  if (HasFatalFailure()) return;
  for (const auto& g : got) EXPECT_EQ(g, (std::vector<std::string>{std::string("\0ab", 3), ""}));
}

// GradientReducer: gradients averaged over the ranks while backward runs, in several buckets (a
// 16-byte limit: one parameter each), a parameter that gets no gradient counted as zeros, the
// extra values summed; and again the next step, from clean buckets.
TEST(DistributedTest, GradientsAreAveragedBucketByBucketDuringBackward) {
  std::vector<std::vector<at::Tensor>> grads(2);
  std::vector<at::Tensor> extras(2);
  std::vector<int> buckets(2);
  two_ranks([&](int rank, int port) {
    auto g = ProcessGroup::connect(rank_env(rank, 2, port), 10);
    std::vector<at::Tensor> p = {at::ones({2, 2}).requires_grad_(true), at::ones({3}).requires_grad_(true),
                                 at::ones({2}).requires_grad_(true)};  // p[2] unused
    GradientReducer reducer(*g, p, 2, 16);
    buckets[static_cast<size_t>(rank)] = reducer.buckets();
    for (int step = 0; step < 2; ++step) {
      const float k = static_cast<float>((rank + 1) * (step + 1));  // rank 0: 1, 2; rank 1: 2, 4
      reducer.set_extra(at::tensor({k, 10.0f}));
      ((p[0] * k).sum() + (p[1] * p[1] * k).sum()).backward();
      reducer.finish();
    }
    grads[static_cast<size_t>(rank)] = {p[0].grad().clone(), p[1].grad().clone(), p[2].grad().clone()};
    extras[static_cast<size_t>(rank)] = reducer.extra();
  });
  if (HasFatalFailure()) return;
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_EQ(buckets[r], 3);
    // Step 2: k is 2 and 4, mean 3: d/dp0 = 3, d/dp1 = 2 * p1 * 3 = 6, p2 none: 0.
    EXPECT_TRUE(at::equal(grads[r][0], at::full({2, 2}, 3.0f))) << grads[r][0];
    EXPECT_TRUE(at::equal(grads[r][1], at::full({3}, 6.0f))) << grads[r][1];
    EXPECT_TRUE(at::equal(grads[r][2], at::zeros({2}))) << grads[r][2];
    EXPECT_TRUE(at::equal(extras[r], at::tensor({6.0f, 20.0f}))) << extras[r];
  }
}

// Autograd hands each parameter one gradient per backward; a second backward before finish()
// would silently drop or double-count, so it is an error, and the step can still be finished.
TEST(DistributedTest, ASecondGradientInOneStepIsAnError) {
  std::vector<std::string> second(2);
  std::vector<at::Tensor> grads(2);
  two_ranks([&](int rank, int port) {
    auto g = ProcessGroup::connect(rank_env(rank, 2, port), 10);
    std::vector<at::Tensor> p = {at::ones({2}).requires_grad_(true)};
    GradientReducer reducer(*g, p, 0, 16);
    reducer.set_extra(at::empty({0}));
    (p[0] * 2).sum().backward();
    try {
      (p[0] * 3).sum().backward();
    } catch (const std::exception& e) {
      second[static_cast<size_t>(rank)] = e.what();
    }
    reducer.finish();
    grads[static_cast<size_t>(rank)] = p[0].grad().clone();
  });
  if (HasFatalFailure()) return;
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_NE(second[r].find("a second gradient for one parameter"), std::string::npos) << second[r];
    EXPECT_TRUE(at::equal(grads[r], at::full({2}, 2.0f))) << grads[r];  // the first backward's
  }
}

TEST(DistributedTest, ARankThatNeverJoinsIsNamed) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ProcessGroup::connect(rank_env(0, 3, free_port()), 1.5);
    FAIL() << "connected without ranks 1 and 2";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ranks 1, 2 did not join within 1 s"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30);
}

}  // namespace
}  // namespace graft::train
