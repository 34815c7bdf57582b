// graft::search on the bundled pair, limited to a few cut points and a few hundred images so a
// whole search takes seconds: the enumeration's arithmetic, successive halving, the front, the
// state file, and resume after an interruption reaching the same result as a run without one.
#include "graft/search/search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/cut/cut.h"
#include "graft/exec/session.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/train/evaluate.h"

namespace graft::search {
namespace {

const std::string kMobile = std::string(GRAFT_MODELS) + "/mobile.onnx";
const std::string kServer = std::string(GRAFT_MODELS) + "/server.onnx";

class SearchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mobile_graph_ = new ir::Graph(ir::load(kMobile));
    server_graph_ = new ir::Graph(ir::load(kServer));
    train_ = new data::Dataset(data::head(data::open_dataset("fashion-mnist", "train"), 1400));
    test_ = new data::Dataset(data::head(data::open_dataset("fashion-mnist", "test"), 300));
  }
  static void TearDownTestSuite() {
    delete mobile_graph_;
    delete server_graph_;
    delete train_;
    delete test_;
  }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("graft_search_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Options small() {
    Options o;
    o.mobile_cuts = {"conv_dw_6_relu", "conv_dw_12_relu"};
    o.server_cuts = {"block17_2_ac", "mixed_7a"};
    o.holdout = 300;
    o.min_images = 256;
    o.max_images = 768;
    o.eta = 3;
    o.batch = 64;
    return o;
  }
  Model mobile() const { return {mobile_graph_, kMobile}; }
  Model server() const { return {server_graph_, kServer}; }

  static ir::Graph* mobile_graph_;
  static ir::Graph* server_graph_;
  static data::Dataset* train_;
  static data::Dataset* test_;
  std::filesystem::path dir_;
};
ir::Graph* SearchTest::mobile_graph_ = nullptr;
ir::Graph* SearchTest::server_graph_ = nullptr;
data::Dataset* SearchTest::train_ = nullptr;
data::Dataset* SearchTest::test_ = nullptr;

const cut::CutPoint& point(const std::vector<cut::CutPoint>& points, const std::string& tensor) {
  for (const auto& p : points) {
    if (p.tensor == tensor) return p;
  }
  throw Error("no cut point " + tensor);
}

TEST_F(SearchTest, CandidatesCostWhatTheirCutsAndAdaptersCost) {
  Options o = small();
  o.max_images = 256;  // one rung
  const Result r = run(mobile(), server(), *train_, nullptr, o);
  ir::Graph ms = *mobile_graph_, ss = *server_graph_;
  ir::fix_batch(ms, 1);
  ir::infer_shapes(ms);
  ir::fix_batch(ss, 1);
  ir::infer_shapes(ss);
  const auto mp = cut::cut_points(ms), sp = cut::cut_points(ss);
  // 2 mobile cuts x 2 server cuts x (conv, bottleneck); the two mobile cuts do not dominate
  // each other (more MACs, fewer bytes).
  ASSERT_EQ(r.candidates.size(), 8u);
  EXPECT_EQ(r.pairs_joinable, 4);
  EXPECT_EQ(r.pairs_kept, 4);
  for (const auto& c : r.candidates) {
    const cut::CutPoint& m = point(mp, c.mobile_cut);
    const cut::CutPoint& s = point(sp, c.server_cut);
    if (c.family == "conv") {
      EXPECT_EQ(c.device_macs, m.macs_before) << c.adapter;
      EXPECT_EQ(c.split_bytes, m.bytes) << c.adapter;
    } else {
      ASSERT_EQ(c.family, "bottleneck");
      // The encoder runs on the device and sends fewer bytes than the cut tensor.
      EXPECT_GT(c.device_macs, m.macs_before) << c.adapter;
      EXPECT_LT(c.split_bytes, m.bytes) << c.adapter;
    }
    EXPECT_GT(c.server_macs, s.macs_after) << c.adapter;  // the adapter (or its decoder) runs there
    ASSERT_EQ(c.evaluations.size(), 1u);
    EXPECT_EQ(c.evaluations[0].images, 256);
    EXPECT_GE(c.evaluations[0].accuracy, 0.0);
    EXPECT_LE(c.evaluations[0].accuracy, 1.0);
  }
}

TEST_F(SearchTest, HalvingPromotesAThirdAndTheFrontIsNonDominated) {
  const std::string state = (dir_ / "search.json").string();
  Options o = small();
  o.state = state;
  o.batch = 16;  // more steps: the adapters' BatchNorm statistics move well away from their start
  const Result r = run(mobile(), server(), *train_, test_, o);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.rungs_done, 2);
  int second = 0;
  double best_first = 0;
  for (const auto& c : r.candidates) {
    best_first = std::max(best_first, c.evaluations.at(0).accuracy);
    if (c.evaluations.size() == 2) {
      ++second;
      EXPECT_EQ(c.evaluations[1].images, 768);
    }
  }
  EXPECT_EQ(second, 3);  // ceil(8 / 3)
  // The most accurate candidate of a rung always goes on (nothing dominates it).
  bool promoted_best = false;
  for (const auto& c : r.candidates) {
    promoted_best = promoted_best || (c.evaluations[0].accuracy == best_first && c.evaluations.size() == 2);
  }
  EXPECT_TRUE(promoted_best);
  ASSERT_FALSE(r.front.empty());
  for (int id : r.front) {
    const Candidate& a = r.candidates[static_cast<size_t>(id)];
    EXPECT_TRUE(a.test_accuracy.has_value());
    for (const auto& b : r.candidates) {
      const bool dominated = b.last()->accuracy >= a.last()->accuracy && b.device_macs <= a.device_macs &&
                             b.split_bytes <= a.split_bytes &&
                             (b.last()->accuracy > a.last()->accuracy || b.device_macs < a.device_macs ||
                              b.split_bytes < a.split_bytes);
      EXPECT_FALSE(dominated) << id << " is dominated by " << b.id;
    }
  }
  // The state file is the result.
  const auto j = nlohmann::json::parse(read_file(state));
  EXPECT_EQ(j["kind"], "graft.search");
  EXPECT_TRUE(j["complete"].get<bool>());
  EXPECT_EQ(j["candidates"].size(), 8u);
  EXPECT_EQ(j["front"].get<std::vector<int>>(), r.front);
  // --write-best: the most accurate front point, rebuilt and trained as it was; it runs and
  // scores what the search recorded on the held-out images it was scored on.
  const Candidate* b = best(r);
  ASSERT_NE(b, nullptr);
  for (int id : r.front) EXPECT_GE(b->last()->accuracy, r.candidates[static_cast<size_t>(id)].last()->accuracy);
  ir::Graph h = build(mobile(), server(), *train_, *b, o);
  // Rebuilt by training again, it scores on the test images exactly what the search's own
  // copy (its adapter's weights and BatchNorm statistics, kept in memory) scored.
  ASSERT_TRUE(b->test_accuracy.has_value());
  {
    const data::Preprocess p = data::Preprocess::from_metadata(h, "best");
    exec::SessionOptions so;
    so.optimize = true;
    exec::Session s(h, so, "best");
    EXPECT_DOUBLE_EQ(train::evaluate(s, *test_, p).top1, *b->test_accuracy);
  }
  ir::Graph loaded;
  const std::string path = (dir_ / "best.onnx").string();
  ir::save(h, path);
  loaded = ir::load(path);
  EXPECT_EQ(loaded.get_metadata("graft.role"), "hybrid");
  const auto budget_limited = best(r, /*max_split_bytes=*/1);
  EXPECT_EQ(budget_limited, nullptr);
}

TEST_F(SearchTest, ResumeAfterAnInterruptionReachesTheSameResult) {
  const Options o = small();
  const Result straight = run(mobile(), server(), *train_, nullptr, o);
  const std::string state = (dir_ / "search.json").string();
  // Interrupted in rung 0, and in rung 1 (whose candidates continue from rung 0's adapters: the
  // resumed search trains those again first).
  for (int stop_after : {5, 9}) {
    SCOPED_TRACE("interrupted after " + std::to_string(stop_after) + " evaluations");
    std::filesystem::remove(state);
    Options first = o;
    first.state = state;
    int evaluations = 0;
    first.progress = [&](const std::string& line) {
      if (line.find("] ") != std::string::npos && ++evaluations == stop_after) throw std::runtime_error("interrupted");
    };
    EXPECT_THROW(run(mobile(), server(), *train_, nullptr, first), std::runtime_error);
    auto j = nlohmann::json::parse(read_file(state));
    EXPECT_FALSE(j["complete"].get<bool>());
    int recorded = 0;
    for (const auto& c : j["candidates"]) recorded += static_cast<int>(c["evaluations"].size());
    EXPECT_EQ(recorded, stop_after);

    Options again = o;
    again.state = state;
    again.resume = true;
    int trained = 0;
    again.progress = [&](const std::string& line) { trained += line.find("] ") != std::string::npos; };
    const Result resumed = run(mobile(), server(), *train_, nullptr, again);
    EXPECT_EQ(trained, 8 + 3 - stop_after);  // only what was not done
    ASSERT_EQ(resumed.candidates.size(), straight.candidates.size());
    for (size_t i = 0; i < straight.candidates.size(); ++i) {
      const auto& a = straight.candidates[i].evaluations;
      const auto& b = resumed.candidates[i].evaluations;
      ASSERT_EQ(a.size(), b.size()) << i;
      for (size_t k = 0; k < a.size(); ++k) {
        EXPECT_DOUBLE_EQ(a[k].accuracy, b[k].accuracy) << i << " rung " << k;
        EXPECT_EQ(a[k].images, b[k].images) << i << " rung " << k;
      }
    }
    EXPECT_EQ(resumed.front, straight.front);
    EXPECT_TRUE(resumed.complete);
  }
  Options again = o;
  again.state = state;
  again.resume = true;

  // Resuming with other settings is refused, naming the setting.
  Options other = again;
  other.lr = 0.1;
  try {
    run(mobile(), server(), *train_, nullptr, other);
    FAIL() << "resumed with another learning rate";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'lr' differs"), std::string::npos) << e.what();
  }
}

TEST_F(SearchTest, PromotedCandidatesContinueUnlessRestarted) {
  Options o = small();
  const Result cont = run(mobile(), server(), *train_, nullptr, o);
  o.restart = true;
  const Result fresh = run(mobile(), server(), *train_, nullptr, o);
  int differ = 0;
  for (size_t i = 0; i < cont.candidates.size(); ++i) {
    const auto& a = cont.candidates[i].evaluations;
    const auto& b = fresh.candidates[i].evaluations;
    ASSERT_EQ(a.size(), b.size());
    EXPECT_DOUBLE_EQ(a[0].accuracy, b[0].accuracy);  // rung 0 is the same either way
    if (a.size() == 2) {
      EXPECT_EQ(a[1].images, 768);  // 256 + 512 more
      EXPECT_EQ(b[1].images, 768);  // 768 from scratch
      differ += a[1].accuracy != b[1].accuracy;
    }
  }
  EXPECT_GT(differ, 0);
  // The setting is part of the state: a search is not resumed with the other one.
  const std::string state = (dir_ / "search.json").string();
  o.state = state;
  run(mobile(), server(), *train_, nullptr, o);
  o.resume = true;
  o.restart = false;
  try {
    run(mobile(), server(), *train_, nullptr, o);
    FAIL() << "resumed a restarting search as a continuing one";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'continue' differs"), std::string::npos) << e.what();
  }
}

TEST_F(SearchTest, CachesStayWithinTheMemoryBound) {
  Options o = small();
  const Result unbounded = run(mobile(), server(), *train_, nullptr, o);
  ASSERT_GT(unbounded.cache_peak, 0);
  EXPECT_LE(unbounded.cache_peak, unbounded.cache_bound);
  // Half the memory: the rungs' candidates are taken in groups whose caches fit, computing the
  // same cached values, so the search reaches the same result.
  o.cache_memory = unbounded.cache_peak / 2;
  std::vector<std::string> lines;
  o.progress = [&](const std::string& line) { lines.push_back(line); };
  const Result half = run(mobile(), server(), *train_, nullptr, o);
  EXPECT_EQ(half.cache_bound, unbounded.cache_peak / 2);
  EXPECT_GT(half.cache_peak, 0);
  EXPECT_LE(half.cache_peak, half.cache_bound);
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.find("groups of candidates") != std::string::npos; }));
  ASSERT_EQ(half.candidates.size(), unbounded.candidates.size());
  for (size_t i = 0; i < half.candidates.size(); ++i) {
    const auto& a = unbounded.candidates[i].evaluations;
    const auto& b = half.candidates[i].evaluations;
    ASSERT_EQ(a.size(), b.size()) << i;
    for (size_t k = 0; k < a.size(); ++k) EXPECT_DOUBLE_EQ(a[k].accuracy, b[k].accuracy) << i << " rung " << k;
  }
  EXPECT_EQ(half.front, unbounded.front);
  // Too little for any candidate's caches: every candidate trains without, running both models
  // on each batch (values equal up to rounding, so accuracy within a few images).
  o.cache_memory = 1;
  const Result none = run(mobile(), server(), *train_, nullptr, o);
  EXPECT_EQ(none.cache_peak, 0);
  ASSERT_EQ(none.candidates.size(), unbounded.candidates.size());
  for (size_t i = 0; i < none.candidates.size(); ++i) {
    const auto& a = unbounded.candidates[i].evaluations;
    const auto& b = none.candidates[i].evaluations;
    ASSERT_EQ(a.size(), b.size()) << i;
    for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k].accuracy, b[k].accuracy, 0.02) << i << " rung " << k;
  }
}

TEST_F(SearchTest, BadSettingsAreOneLineErrors) {
  Options o = small();
  o.mobile_cuts = {"no_such_layer"};
  try {
    run(mobile(), server(), *train_, nullptr, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'no_such_layer' is not a cut point"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  o = small();
  o.holdout = 1400;
  EXPECT_THROW(run(mobile(), server(), *train_, nullptr, o), Error);
  o = small();
  o.eta = 1;
  EXPECT_THROW(run(mobile(), server(), *train_, nullptr, o), Error);
  o = small();
  o.resume = true;
  o.state = (dir_ / "missing.json").string();
  EXPECT_THROW(run(mobile(), server(), *train_, nullptr, o), Error);
}

}  // namespace
}  // namespace graft::search
