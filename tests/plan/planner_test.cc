// The planner's arithmetic on hand-made profiles, and its units.
#include "graft/plan/planner.h"

#include <gtest/gtest.h>

#include "../common/errors.h"

namespace graft::plan {
namespace {

bool contains(const std::string& message, const std::string& part) { return message.find(part) != std::string::npos; }
#define EXPECT_ERROR_CONTAINS(expr, part) \
  EXPECT_PRED2(contains, graft::testing::error_message([&] { (void)(expr); }), part)

Wire wire(int64_t bytes, double encode_ms, double decode_ms) { return {bytes, encode_ms, decode_ms}; }

// A model of 10 ms on the device (2 ms on the server) with two cut points: 'a' after 10 % of the
// work (a big tensor) and 'b' after 60 % (a small one).
Profile device_profile() {
  Profile p;
  p.model = "m.onnx";
  p.sha256 = "abc";
  p.batch = 1;
  p.total_ms = 10;
  p.macs = 1000;
  p.input_name = "x";
  p.input_wire["fp32"] = wire(600000, 0.1, 0);
  p.input_wire["int8"] = wire(150000, 0.3, 0);
  p.input_wire["png"] = wire(50000, 0, 0);
  CutTime a;
  a.tensor = "a";
  a.row = 3;
  a.prefix_ms = 1;
  a.suffix_ms = 9;
  a.macs_before = 100;
  a.macs_after = 900;
  a.wire["fp32"] = wire(1000000, 0.2, 0.05);
  a.wire["int8"] = wire(250000, 0.5, 0.25);
  CutTime b = a;
  b.tensor = "b";
  b.row = 7;
  b.prefix_ms = 6;
  b.suffix_ms = 4;
  b.macs_before = 600;
  b.macs_after = 400;
  b.wire["fp32"] = wire(10000, 0.01, 0.02);
  b.wire["int8"] = wire(2500, 0.04, 0.03);
  p.cuts = {a, b};
  return p;
}

Profile server_profile() {
  Profile p = device_profile();
  p.total_ms = 2;
  p.input_wire["fp32"] = wire(600000, 0, 0.15);
  p.input_wire["int8"] = wire(150000, 0, 0.35);
  p.input_wire["png"] = wire(50000, 0, 1.5);
  p.cuts[0].prefix_ms = 0.2;
  p.cuts[0].suffix_ms = 1.8;
  p.cuts[0].wire["fp32"].decode_ms = 0.07;
  p.cuts[1].prefix_ms = 1.2;
  p.cuts[1].suffix_ms = 0.8;
  p.cuts[1].wire["fp32"].decode_ms = 0.03;
  return p;
}

const Row& row_for(const Plan& plan, const std::string& tensor) {
  for (const auto& r : plan.rows) {
    if (r.kind == Row::Kind::kSplit && r.tensor == tensor) return r;
  }
  throw Error("no row for " + tensor);
}

TEST(PlannerTest, EveryTermOfEveryRow) {
  // 8 Mbit/s = 1 byte per microsecond.
  const Plan plan = make_plan(device_profile(), server_profile(), {8e6, 30}, {});
  ASSERT_EQ(plan.rows.size(), 5u);  // device, server (fp32), server (png), a, b
  EXPECT_EQ(plan.rows[0].kind, Row::Kind::kDevice);
  EXPECT_DOUBLE_EQ(plan.rows[0].total_ms, 10);
  EXPECT_EQ(plan.rows[1].kind, Row::Kind::kServer);
  EXPECT_EQ(plan.rows[1].wire, "fp32");
  // 0.1 encode + 600 transfer + 30 rtt + 0.15 decode + 2 server
  EXPECT_DOUBLE_EQ(plan.rows[1].transfer_ms, 600);
  EXPECT_DOUBLE_EQ(plan.rows[1].total_ms, 0.1 + 600 + 30 + 0.15 + 2);
  EXPECT_EQ(plan.rows[2].wire, "png");
  EXPECT_DOUBLE_EQ(plan.rows[2].total_ms, 0 + 50 + 30 + 1.5 + 2);
  const Row& a = row_for(plan, "a");
  EXPECT_DOUBLE_EQ(a.device_ms, 1);
  EXPECT_DOUBLE_EQ(a.encode_ms, 0.2);
  EXPECT_DOUBLE_EQ(a.transfer_ms, 1000);
  EXPECT_DOUBLE_EQ(a.decode_ms, 0.07);  // the server's decode, not the device's
  EXPECT_DOUBLE_EQ(a.server_ms, 1.8);   // the server's suffix
  EXPECT_DOUBLE_EQ(a.total_ms, 1 + 0.2 + 1000 + 30 + 0.07 + 1.8);
  EXPECT_EQ(a.device_macs, 100);
  EXPECT_EQ(a.server_macs, 900);
  const Row& b = row_for(plan, "b");
  EXPECT_DOUBLE_EQ(b.total_ms, 6 + 0.01 + 10 + 30 + 0.03 + 0.8);
  // 10 ms all on the device beats 46.84 at b.
  EXPECT_EQ(plan.best, 0u);
}

TEST(PlannerTest, TheAnswerTravelsBackToo) {
  Profile d = device_profile(), s = server_profile();
  s.output_bytes = 4000;  // 1,000 class scores
  const Plan plan = make_plan(d, s, {8e6, 0}, {});
  const Row& b = row_for(plan, "b");
  EXPECT_EQ(b.answer_bytes, 4000);
  EXPECT_DOUBLE_EQ(b.transfer_ms, 10 + 4);
  EXPECT_DOUBLE_EQ(plan.rows[1].transfer_ms, 600 + 4);  // all on the server
  EXPECT_DOUBLE_EQ(plan.rows[0].transfer_ms, 0);        // all on the device: nothing travels
}

TEST(PlannerTest, TheBestSplitMovesWithTheBandwidth) {
  const Profile d = device_profile(), s = server_profile();
  // Fast link, no latency: sending the PNG to the fast server wins (0.4 + 1.5 + 2 ms).
  Plan fast = make_plan(d, s, {1e9, 0}, {});
  EXPECT_EQ(fast.rows[fast.best].kind, Row::Kind::kServer);
  EXPECT_EQ(fast.rows[fast.best].wire, "png");
  // Without a PNG: at 1 Gbit/s the raw input (4.8 ms on the wire, 7.05 in all) loses to
  // splitting at b (6.92); at 10 Gbit/s it wins.
  Profile d2 = d, s2 = s;
  d2.input_wire.erase("png");
  s2.input_wire.erase("png");
  Plan no_png = make_plan(d2, s2, {1e9, 0}, {});
  EXPECT_EQ(no_png.rows.size(), 4u);
  EXPECT_EQ(no_png.rows[no_png.best].tensor, "b");
  EXPECT_DOUBLE_EQ(no_png.rows[no_png.best].total_ms, 6 + 0.01 + 0.08 + 0.03 + 0.8);
  Plan faster = make_plan(d2, s2, {1e10, 0}, {});
  EXPECT_EQ(faster.rows[faster.best].kind, Row::Kind::kServer);
  EXPECT_DOUBLE_EQ(faster.rows[faster.best].total_ms, 0.1 + 0.48 + 0.15 + 2);
  Plan mid = make_plan(d2, s2, {1e8, 0}, {});  // 50.25 ms raw vs b: 6 + 0.01 + 0.8 + 0.03 + 0.8
  EXPECT_EQ(mid.rows[mid.best].tensor, "b");
  // Slow link: the device alone.
  Plan slow = make_plan(d2, s2, {1e6, 0}, {});
  EXPECT_EQ(slow.rows[slow.best].kind, Row::Kind::kDevice);
}

TEST(PlannerTest, CodecAndZstdPickTheirWire) {
  PlanOptions o;
  o.codec = "int8";
  const Plan plan = make_plan(device_profile(), server_profile(), {8e6, 0}, o);
  const Row& a = row_for(plan, "a");
  EXPECT_EQ(a.wire, "int8");
  EXPECT_EQ(a.bytes, 250000);
  EXPECT_DOUBLE_EQ(a.encode_ms, 0.5);
  o.zstd = true;  // not measured in these profiles
  EXPECT_ERROR_CONTAINS(make_plan(device_profile(), server_profile(), {8e6, 0}, o), "no 'int8+zstd' wire");
  o.codec = "bf16";
  EXPECT_ERROR_CONTAINS(make_plan(device_profile(), server_profile(), {8e6, 0}, o), "'bf16'");
}

TEST(PlannerTest, MismatchedProfilesAreRefused) {
  Profile s = server_profile();
  s.sha256 = "def";
  EXPECT_ERROR_CONTAINS(make_plan(device_profile(), s, {1e6, 0}, {}), "different model files");
  s = server_profile();
  s.batch = 8;
  EXPECT_ERROR_CONTAINS(make_plan(device_profile(), s, {1e6, 0}, {}), "same --batch");
  s = server_profile();
  s.cuts.pop_back();
  EXPECT_ERROR_CONTAINS(make_plan(device_profile(), s, {1e6, 0}, {}), "cut point 'b' is missing");
  EXPECT_ERROR_CONTAINS(make_plan(device_profile(), server_profile(), {0, 0}, {}), "positive bandwidth");
}

TEST(PlannerTest, TheHybridSplitPointIsMarked) {
  Profile d = device_profile();
  d.split_point = "b";
  const Plan plan = make_plan(d, server_profile(), {1e6, 0}, {});
  EXPECT_TRUE(row_for(plan, "b").hybrid_split);
  EXPECT_FALSE(row_for(plan, "a").hybrid_split);
  EXPECT_NE(row_for(plan, "b").describe().find("the hybrid's split point"), std::string::npos);
  const auto j = to_json(plan);
  EXPECT_EQ(j["rows"].size(), 5u);
  EXPECT_EQ(j["best_is"], plan.rows[plan.best].describe());
}

TEST(PlannerTest, Units) {
  EXPECT_DOUBLE_EQ(parse_bandwidth("10Mbit/s"), 1e7);
  EXPECT_DOUBLE_EQ(parse_bandwidth("1.5Gbit/s"), 1.5e9);
  EXPECT_DOUBLE_EQ(parse_bandwidth("800kbit/s"), 8e5);
  EXPECT_DOUBLE_EQ(parse_bandwidth("100Mbps"), 1e8);
  EXPECT_DOUBLE_EQ(parse_bandwidth("12.5MB/s"), 1e8);
  EXPECT_DOUBLE_EQ(parse_bandwidth("1e6bit/s"), 1e6);
  EXPECT_ERROR_CONTAINS(parse_bandwidth("fast"), "'fast'");
  EXPECT_ERROR_CONTAINS(parse_bandwidth("10"), "unknown unit ''");
  EXPECT_ERROR_CONTAINS(parse_bandwidth("10Mb"), "unknown unit 'Mb'");
  EXPECT_ERROR_CONTAINS(parse_bandwidth("-3Mbit/s"), "positive");
  EXPECT_ERROR_CONTAINS(parse_bandwidth("0Mbit/s"), "positive");
  EXPECT_DOUBLE_EQ(parse_duration_ms("30ms"), 30);
  EXPECT_DOUBLE_EQ(parse_duration_ms("0.2ms"), 0.2);
  EXPECT_DOUBLE_EQ(parse_duration_ms("1s"), 1000);
  EXPECT_DOUBLE_EQ(parse_duration_ms("500us"), 0.5);
  EXPECT_ERROR_CONTAINS(parse_duration_ms("30"), "unknown unit");
  EXPECT_ERROR_CONTAINS(parse_duration_ms("-1ms"), "non-negative");
  EXPECT_EQ(bandwidth_str(1e7), "10 Mbit/s");
  EXPECT_EQ(bandwidth_str(2.5e9), "2.5 Gbit/s");
}

}  // namespace
}  // namespace graft::plan
