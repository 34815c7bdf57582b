// graft search and graft report as a user runs them: a small search on the bundled pair (a few
// cut points, a few hundred images) with --write-best, an interrupted search resumed from its
// file, a report of it, and one-line errors. The report in a real browser is
// tests/integration/report_chromium.sh.
#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>

#include "cli_fixture.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"

namespace {

using graft::testing::CliTest;
using graft::testing::Result;
using graft::testing::slurp;

class SearchCliTest : public CliTest {};

const std::string kSmall = " --mobile " + std::string(GRAFT_MODELS) + "/mobile.onnx --server " + std::string(GRAFT_MODELS) +
                           "/server.onnx --mobile-cuts conv_dw_6_relu,conv_dw_12_relu --server-cuts block17_2_ac,mixed_7a "
                           "--limit 1400 --holdout 300 --min-images 256 --max-images 768 --batch 64 --test-limit 300";

TEST_F(SearchCliTest, SearchWritesItsResultTheBestHybridAndAReport) {
  Result r = graft("search" + kSmall + " -o " + file("s.json") + " --write-best " + file("best.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Pareto front"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(slurp(file("s.json")));
  EXPECT_EQ(j["kind"], "graft.search");
  EXPECT_TRUE(j["complete"].get<bool>());
  EXPECT_EQ(j["candidates"].size(), 8u);
  EXPECT_TRUE(j["baselines"]["server"].contains("test_top1"));
  const int best = j["best_written"].get<int>();
  ASSERT_GE(best, 0);
  // The best written is the front's most accurate point.
  double top = 0;
  for (int id : j["front"].get<std::vector<int>>()) top = std::max(top, j["candidates"][id]["holdout_top1"].get<double>());
  EXPECT_EQ(j["candidates"][best]["holdout_top1"].get<double>(), top);
  const graft::ir::Graph h = graft::ir::load(file("best.onnx"));
  EXPECT_EQ(h.get_metadata(graft::ir::kMetaRole), "hybrid");
  const auto record = nlohmann::json::parse(h.get_metadata(graft::ir::kMetaCut).value());
  EXPECT_EQ(record["head"]["tensors"][0], j["candidates"][best]["mobile_cut"]);
  // Its test accuracy, measured by graft eval, is the one the search recorded.
  r = graft("eval " + file("best.onnx") + " --limit 300 --json --no-sources");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["models"][0]["top1"].get<double>(),
                   j["candidates"][best]["test_top1"].get<double>());

  r = graft("report " + file("s.json") + " " + file("best.onnx") + " -o " + file("r.html"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string html = slurp(file("r.html"));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("Pareto front"), std::string::npos);
  // The hybrid's strip marks its split point (the head's output, or a bottleneck's boundary).
  const std::string split = record.value("split_point", "");
  ASSERT_FALSE(split.empty());
  EXPECT_NE(html.find("split: " + split), std::string::npos) << split;
}

TEST_F(SearchCliTest, AKilledSearchResumesFromItsFile) {
  // Killed (SIGKILL) once its file records a few evaluations, then resumed: the same result as a
  // search that was never interrupted.
  ASSERT_EQ(graft("search" + kSmall + " --no-test -o " + file("straight.json")).code, 0);
  const std::string cmd = std::string(GRAFT_BINARY) + " search" + kSmall + " --no-test -o " + file("k.json") +
                          " >/dev/null 2>" + file("k.err") + " & echo $! > " + file("k.pid");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const pid_t pid = std::stoi(slurp(file("k.pid")));
  bool killed = false;
  for (int i = 0; i < 6000 && !killed; ++i) {  // up to 5 minutes (sanitizer builds start slowly)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto j = nlohmann::json::parse(slurp(file("k.json")), nullptr, false);
    if (j.is_discarded() || !j.contains("candidates")) continue;
    int done = 0;
    for (const auto& c : j["candidates"]) done += static_cast<int>(c["evaluations"].size());
    if (done >= 3) killed = ::kill(pid, SIGKILL) == 0;
  }
  ASSERT_TRUE(killed) << slurp(file("k.err"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto partial = nlohmann::json::parse(slurp(file("k.json")));  // whole: written atomically
  EXPECT_FALSE(partial["complete"].get<bool>());
  const Result r = graft("search" + kSmall + " --no-test -o " + file("k.json") + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming"), std::string::npos) << r.err;
  const auto a = nlohmann::json::parse(slurp(file("straight.json")));
  const auto b = nlohmann::json::parse(slurp(file("k.json")));
  ASSERT_EQ(a["candidates"].size(), b["candidates"].size());
  for (size_t i = 0; i < a["candidates"].size(); ++i) {
    EXPECT_EQ(a["candidates"][i]["evaluations"].size(), b["candidates"][i]["evaluations"].size()) << i;
    EXPECT_DOUBLE_EQ(a["candidates"][i]["holdout_top1"].get<double>(), b["candidates"][i]["holdout_top1"].get<double>()) << i;
  }
  EXPECT_EQ(a["front"], b["front"]);
}

TEST_F(SearchCliTest, BadInputsExit2WithOneLine) {
  { std::ofstream(file("junk.json")) << "{\"kind\": \"graft.search\", \"candidates\": 3}"; }
  { std::ofstream(file("other.json")) << "{\"hello\": 1}"; }
  { std::ofstream(file("broken.json")) << "{\"kind\": "; }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"search" + kSmall + " --budget soon", "--budget 'soon'"},
      {"search" + kSmall + " --adapters conv,magic", "unknown family 'magic'"},
      {"search" + kSmall + " --resume", "--resume needs -o"},
      {"search" + kSmall + " --resume -o " + file("none.json"), "none.json: no search to resume"},
      {"search" + kSmall + " --resume -o " + file("other.json"), "other.json: not a graft search result"},
      {"search" + kSmall + " --mobile-cuts reshape_2", "'reshape_2' is not a cut point with a 4-D output"},
      {"search" + kSmall + " --holdout 1400", "--holdout 1400"},
      {"search --mobile /no/such.onnx --server /no/such.onnx", "/no/such.onnx"},
      {"report " + file("junk.json") + " -o " + file("bad.html"), "junk.json"},
      {"report " + file("other.json") + " -o " + file("bad.html"), "other.json: a JSON document graft report does not know"},
      {"report " + file("broken.json") + " -o " + file("bad.html"), "broken.json"},
      {"report /no/such.onnx -o " + file("bad.html"), "/no/such.onnx"},
  };
  for (const auto& [args, want] : cases) {
    const Result r = graft(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << args << "\n" << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(file("bad.html")));  // nothing written on an error
}

}  // namespace
