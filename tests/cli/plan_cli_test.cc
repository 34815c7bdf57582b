// graft profile, graft plan and graft infer --limit-rate as a user runs them. Whether the plan's
// predictions match measured latency is a benchmark (bench/plan_check.sh, docs/PLANNING.md), not
// a test: these check the bookkeeping, the errors, and that the rate limit holds requests back.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_fixture.h"
#include "graft/data/npy.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"

namespace {

using graft::testing::CliTest;
using graft::testing::Result;
using graft::testing::slurp;

class PlanCliTest : public CliTest {
 protected:
  // A server a failed assertion left running is stopped.
  void TearDown() override {
    if (std::filesystem::exists(file("serve.pid"))) {
      (void)stop_server();
      std::filesystem::remove(file("serve.pid"));
    }
  }
};

TEST_F(PlanCliTest, ProfileThenPlanThenSweep) {
  const std::string model = std::string(GRAFT_MODELS) + "/server.onnx";
  Result r = graft("profile " + model + " -o " + file("p.json") + " --runs 3 --batch 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("cut points"), std::string::npos) << r.out;
  const auto profile = nlohmann::json::parse(slurp(file("p.json")));
  EXPECT_EQ(profile["batch"], 2);
  ASSERT_GT(profile["cut_points"].size(), 3u);

  r = graft("plan " + model + " --device " + file("p.json") + " --server " + file("p.json") +
            " --bandwidth 10Mbit/s --rtt 30ms --codec int8 --zstd --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto plan = nlohmann::json::parse(r.out)["plan"];
  EXPECT_EQ(plan["codec"], "int8");
  EXPECT_EQ(plan["zstd"], true);
  const auto& rows = plan["rows"];
  ASSERT_EQ(rows.size(), profile["cut_points"].size() + 2);  // + all on the device, all on the server
  double best = 1e300;
  for (const auto& row : rows) {
    best = std::min(best, row["total_ms"].get<double>());
    if (row["kind"] == "split") {
      EXPECT_EQ(row["wire"], "int8+zstd");
      EXPECT_DOUBLE_EQ(row["rtt_ms"].get<double>(), 30.0);
      EXPECT_EQ(row["answer_bytes"], 2 * 10 * 4);  // batch 2, ten scores
      EXPECT_NEAR(row["transfer_ms"].get<double>(), (row["bytes"].get<double>() + 80) * 8 / 1e7 * 1e3, 1e-9);
    }
  }
  EXPECT_DOUBLE_EQ(plan["best_ms"].get<double>(), best);

  r = graft("plan " + model + " --device " + file("p.json") + " --server " + file("p.json") +
            " --bandwidth 10Mbit/s --sweep 0.1,1,10,1000Mbit/s");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("best: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best per bandwidth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("100 kbit/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 Gbit/s"), std::string::npos) << r.out;
}

TEST_F(PlanCliTest, BadInputsExit2WithOneLine) {
  const std::string model = std::string(GRAFT_MODELS) + "/server.onnx";
  const std::string other = std::string(GRAFT_MODELS) + "/mobile.onnx";
  ASSERT_EQ(graft("profile " + model + " -o " + file("s.json") + " --runs 2").code, 0);
  ASSERT_EQ(graft("profile " + other + " -o " + file("m.json") + " --runs 2").code, 0);
  ASSERT_EQ(graft("profile " + model + " -o " + file("s8.json") + " --runs 2 --batch 8").code, 0);
  { std::ofstream(file("junk.json")) << "{\"graft_profile\": 1, \"model\": 3}"; }
  const std::string both = " --device " + file("s.json") + " --server " + file("s.json");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plan " + model + " --device " + file("m.json") + " --server " + file("s.json") + " --bandwidth 1Mbit/s",
       "is a profile of another file"},
      {"plan " + model + " --device " + file("s.json") + " --server " + file("s8.json") + " --bandwidth 1Mbit/s",
       "same --batch"},
      {"plan " + model + " --device " + file("junk.json") + " --server " + file("s.json") + " --bandwidth 1Mbit/s",
       "junk.json: malformed graft profile"},
      {"plan " + model + " --device " + file("none.json") + " --server " + file("s.json") + " --bandwidth 1Mbit/s",
       "none.json"},
      {"plan " + model + both + " --bandwidth 10Mb", "unknown unit 'Mb'"},
      {"plan " + model + both + " --bandwidth 1Mbit/s --rtt 30", "unknown unit"},
      {"plan " + model + both, "give --bandwidth"},
      {"plan " + model + both + " --sweep 1,10", "has no unit"},
      {"profile " + model + " -o " + file("x.json") + " --image /no/such.png", "/no/such.png"},
      {"profile " + model + " -o " + file("x.json") + " --input " + file("s.json"), "s.json"},
  };
  for (const auto& [args, want] : cases) {
    const Result r = graft(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << args << "\n" << r.err;
  }
}

TEST_F(PlanCliTest, LimitRateHoldsEveryRequestBackByItsSize) {
  const std::string model = std::string(GRAFT_MODELS) + "/server.onnx";
  ASSERT_EQ(graft("split " + model + " --at mixed_6a --device " + file("dev.onnx") + " --server " + file("srv.onnx")).code,
            0);
  graft::data::write_npy(at::rand({4, 1, 75, 75}), file("x.npy"));
  const std::string port = start_server(file("srv.onnx"), "");
  ASSERT_FALSE(port.empty()) << slurp(file("serve.log"));
  // A device half without graft.preprocess (as a cut of a torchvision export has): --input
  // needs none, images and datasets do.
  {
    graft::ir::Graph dev = graft::ir::load(file("dev.onnx"));
    dev.erase_metadata(graft::ir::kMetaPreprocess);
    graft::ir::save(dev, file("dev.onnx"));
  }
  Result r = graft("infer " + file("dev.onnx") + " --server 127.0.0.1:" + port + " --input " + file("x.npy") +
                   " --batch 1 --limit-rate 2Mbit/s --stats --json --top 0");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto stats = nlohmann::json::parse(r.out)["stats"];
  const double bytes = stats["request_bytes_per_image"].get<double>();
  ASSERT_GT(bytes, 5000);
  // Each request waits at least its serialized size at 2 Mbit/s before it is sent.
  EXPECT_GE(stats["network_and_server_ms"].get<double>(), bytes * 8 / 2e6 * 1e3);
  r = graft("infer " + file("dev.onnx") + " --server 127.0.0.1:" + port + " --input " + file("x.npy") +
            " --limit-rate fast");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'fast'"), std::string::npos) << r.err;
  r = graft("infer " + file("dev.onnx") + " --server 127.0.0.1:" + port + " --data fashion-mnist --limit 2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--input x.npy instead"), std::string::npos) << r.err;
  EXPECT_EQ(stop_server(), 0);
  std::filesystem::remove(file("serve.pid"));
}

}  // namespace
