// Profiles of real models: the bookkeeping every profile must satisfy, whatever the timings.
#include "graft/plan/profile.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "../common/errors.h"
#include "graft/core/file.h"
#include "graft/cut/cut.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/serve/codec.h"

namespace graft::plan {
namespace {

ir::Graph load_at(const std::string& path, int64_t batch) {
  ir::Graph g = ir::load(path);
  ir::fix_batch(g, batch);
  ir::infer_shapes(g);
  return g;
}

Profile profile_of(const std::string& path, int64_t batch, const at::Tensor* image = nullptr) {
  const ir::Graph g = load_at(path, batch);
  const ir::Graph one = load_at(path, 1);
  const auto sizes = ir::known_sizes(g.value(g.inputs[0]).shape);
  ProfileOptions o;
  o.model_path = path;
  o.runs = 5;
  o.warmup = 1;
  o.image = image;
  at::manual_seed(1);
  return measure(g, one, at::rand(*sizes), o);
}

void expect_consistent(const Profile& p, const ir::Graph& per_image) {
  SCOPED_TRACE(p.model);
  EXPECT_GT(p.total_ms, 0);
  EXPECT_GT(p.step_sum_ms, 0);
  EXPECT_NEAR(p.scale, p.total_ms / p.step_sum_ms, 1e-9);
  double attributed = 0;
  for (const auto& n : p.nodes) {
    EXPECT_GE(n.ms, 0) << n.name;
    attributed += n.ms;
  }
  EXPECT_NEAR(attributed + p.unattributed_ms, p.step_sum_ms, 1e-6 * p.step_sum_ms);
  EXPECT_LT(p.unattributed_ms, 0.05 * p.step_sum_ms) << "steps that found no original node";
  const auto points = cut::cut_points(per_image);
  ASSERT_EQ(p.cuts.size(), points.size());
  double previous = 0;
  for (size_t i = 0; i < p.cuts.size(); ++i) {
    const CutTime& c = p.cuts[i];
    SCOPED_TRACE(c.tensor);
    EXPECT_EQ(c.tensor, points[i].tensor);
    EXPECT_EQ(c.macs_before, points[i].macs_before);
    EXPECT_EQ(c.macs_after, points[i].macs_after);
    // Each cut point's head contains the one before it: prefixes never shrink.
    EXPECT_GE(c.prefix_ms, previous - 1e-12);
    previous = c.prefix_ms;
    EXPECT_NEAR(c.prefix_ms + c.suffix_ms, p.total_ms, 1e-9);
    int64_t elements = 1;
    for (int64_t d : c.shape) elements *= d;
    EXPECT_EQ(c.shape[0], p.batch);
    EXPECT_EQ(c.wire.at("fp32").bytes, 4 * elements);
    EXPECT_EQ(c.wire.at("fp16").bytes, 2 * elements);
    EXPECT_EQ(c.wire.at("int8").bytes, elements);
    for (const char* k : {"fp32+zstd", "fp16+zstd", "int8+zstd"}) EXPECT_GT(c.wire.at(k).bytes, 0) << k;
    EXPECT_EQ(points[i].bytes * p.batch, c.wire.at("fp32").bytes);
  }
}

TEST(ProfileTest, TheBundledModelsAddUp) {
  for (const char* name : {"mobile.onnx", "server.onnx"}) {
    const std::string path = std::string(GRAFT_MODELS) + "/" + name;
    const Profile p = profile_of(path, 2);
    expect_consistent(p, load_at(path, 1));
    EXPECT_EQ(p.batch, 2);
    EXPECT_EQ(p.input_shape[0], 2);
    EXPECT_EQ(p.input_wire.count("png"), 0u);
    EXPECT_EQ(p.input_wire.at("fp32").bytes, 4 * at::ones(p.input_shape).numel());
    EXPECT_EQ(p.output_bytes, 2 * 10 * 4);  // two rows of ten class scores
    EXPECT_EQ(p.sha256.size(), 64u);
    EXPECT_GT(p.machine.cores, 0);
    EXPECT_FALSE(p.machine.cpu.empty());
  }
}

TEST(ProfileTest, AnImageAddsThePngWire) {
  const std::string path = std::string(GRAFT_MODELS) + "/mobile.onnx";
  const at::Tensor image = (at::rand({56, 56, 1}) * 255).to(at::kByte);
  const Profile p = profile_of(path, 1, &image);
  ASSERT_EQ(p.input_wire.count("png"), 1u);
  EXPECT_GT(p.input_wire.at("png").bytes, 0);
  EXPECT_EQ(p.input_wire.at("png").encode_ms, 0);
  EXPECT_GT(p.input_wire.at("png").decode_ms, 0);
}

TEST(ProfileTest, JsonRoundTrip) {
  const std::string path = std::string(GRAFT_MODELS) + "/mobile.onnx";
  const Profile p = profile_of(path, 1);
  const Profile q = from_json(nlohmann::json::parse(to_json(p).dump()), "p.json");
  EXPECT_EQ(to_json(q), to_json(p));
  ASSERT_NE(q.find_cut(p.cuts[3].tensor), nullptr);
  EXPECT_EQ(q.find_cut("no such tensor"), nullptr);
}

TEST(ProfileTest, MalformedProfilesAreNamed) {
  const std::string path = std::string(GRAFT_MODELS) + "/mobile.onnx";
  const nlohmann::json good = to_json(profile_of(path, 1));
  auto message = [](const nlohmann::json& j) { return testing::error_message([&] { from_json(j, "p.json"); }); };
  EXPECT_NE(message(nlohmann::json::object()).find("p.json is not a graft profile"), std::string::npos);
  nlohmann::json j = good;
  j["graft_profile"] = 99;
  EXPECT_NE(message(j).find("profile format 99"), std::string::npos);
  j = good;
  j.erase("cut_points");
  EXPECT_NE(message(j).find("p.json: malformed graft profile"), std::string::npos);
  j = good;
  j["cut_points"][0]["prefix_ms"] = -1;
  EXPECT_NE(message(j).find("negative"), std::string::npos);
  j = good;
  j["cut_points"][0]["wire"]["fp32"]["bytes"] = "many";
  EXPECT_NE(message(j).find("malformed"), std::string::npos);
  const std::string dir = ::testing::TempDir() + "/graft_profile_test";
  std::filesystem::create_directories(dir);
  write_file_atomic(dir + "/junk.json", std::string("{not json"));
  EXPECT_NE(testing::error_message([&] { read_profile(dir + "/junk.json"); }).find("junk.json is not JSON"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] { read_profile(dir + "/missing.json"); }).find("missing.json"),
            std::string::npos);
}

TEST(ProfileTest, SeveralInputsAreRefused) {
  ir::Graph g = load_at(std::string(GRAFT_MODELS) + "/mobile.onnx", 1);
  g.inputs.push_back(g.inputs[0]);
  ProfileOptions o;
  o.model_path = "two.onnx";
  EXPECT_NE(testing::error_message([&] { measure(g, g, at::rand({1, 1, 56, 56}), o); }).find("two.onnx: graft profile needs a model with one input"),
            std::string::npos);
}

}  // namespace
}  // namespace graft::plan
