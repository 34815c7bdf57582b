#include "graft/train/trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/calibrate.h"
#include "graft/core/error.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/stitch/stitch.h"
#include "graft/train/evaluate.h"
#include "graft/train/lsq.h"
#include "graft/zoo/zoo.h"

namespace graft::train {
namespace {

TEST(OptimizerTest, SgdMomentumNesterovAndAdamW) {
  auto run = [](OptimizerOptions o, int steps) {
    at::Tensor p = at::ones({1}).requires_grad_(true);
    Optimizer opt({{"p", p}}, o);
    for (int i = 0; i < steps; ++i) {
      p.mutable_grad() = at::full({1}, 2.0);
      opt.step(o.lr);
    }
    return p.item<double>();
  };
  OptimizerOptions sgd;
  sgd.lr = 0.1;
  sgd.momentum = 0.9;
  EXPECT_NEAR(run(sgd, 1), 0.8, 1e-6);   // buf = 2
  EXPECT_NEAR(run(sgd, 2), 0.42, 1e-6);  // buf = 0.9 * 2 + 2 = 3.8
  sgd.nesterov = true;
  EXPECT_NEAR(run(sgd, 1), 1 - 0.1 * (2 + 0.9 * 2), 1e-6);
  OptimizerOptions adamw;
  adamw.kind = "adamw";
  adamw.lr = 0.01;
  adamw.weight_decay = 0.1;
  EXPECT_NEAR(run(adamw, 1), 1 * (1 - 0.01 * 0.1) - 0.01, 1e-6);  // Adam's first step is lr * sign(g)
}

TEST(OptimizerTest, ClippingAndSchedule) {
  at::Tensor p = at::zeros({2}).requires_grad_(true);
  OptimizerOptions o;
  o.lr = 1;
  o.momentum = 0;
  o.clip_norm = 1;
  Optimizer opt({{"p", p}}, o);
  p.mutable_grad() = at::tensor(std::vector<float>{3, 4});
  EXPECT_NEAR(opt.step(1), 5.0, 1e-6);  // the norm before clipping
  EXPECT_NEAR(p[0].item<float>(), -0.6, 1e-6);
  EXPECT_NEAR(cosine_lr(1.0, 0, 100, 10), 0.1, 1e-12);
  EXPECT_NEAR(cosine_lr(1.0, 9, 100, 10), 1.0, 1e-12);
  EXPECT_NEAR(cosine_lr(1.0, 10, 100, 10), 1.0, 1e-12);
  EXPECT_NEAR(cosine_lr(1.0, 55, 100, 10), 0.5, 1e-12);
  EXPECT_NEAR(cosine_lr(1.0, 100, 100, 10), 0.0, 1e-12);
}

// The "mobile" of the fixtures: MobileNet (alpha 0.25, 32 px, grey) with BatchNorm statistics
// calibrated on the first 128 training images.
ir::Graph calibrated_mobile(const data::Dataset& train) {
  zoo::MobileNetV1Options m;
  m.alpha = 0.25;
  m.input = 32;
  m.channels = 1;
  m.classes = 10;
  ir::Graph mobile = zoo::mobilenet_v1(m);
  const auto p = data::Preprocess::from_metadata(mobile, "mobile");
  testing::calibrate_batch_norm(mobile, data::preprocess_batch(train.images.slice(0, 0, 128), p));
  return mobile;
}

// A hybrid of two small zoo models whose BatchNorm statistics are calibrated on Fashion-MNIST,
// standing in for a pretrained pair.
struct Fixture {
  ir::Graph hybrid;
  std::string server_path;  // the calibrated server, as a teacher file
  data::Dataset train, test;
  data::Preprocess p;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    f.train = data::head(data::open_dataset("fashion-mnist", "train"), 640);
    f.test = data::head(data::open_dataset("fashion-mnist", "test"), 500);
    ir::Graph mobile = calibrated_mobile(f.train);
    zoo::InceptionResNetV2Options s;
    s.input = 75;
    s.width = 0.25;
    s.repeats = {1, 1, 1};
    s.channels = 1;
    s.classes = 10;
    ir::Graph server = zoo::inception_resnet_v2(s);
    const auto pm = data::Preprocess::from_metadata(mobile, "mobile");
    const auto ps = data::Preprocess::from_metadata(server, "server");
    at::Tensor batch = f.train.images.slice(0, 0, 128);
    testing::calibrate_batch_norm(server, data::preprocess_batch(batch, ps));
    f.hybrid = stitch::stitch(mobile, "36", server, "mixed_5b", {"conv"});
    f.server_path = ::testing::TempDir() + "/teacher_server.onnx";
    ir::save(server, f.server_path);
    f.p = pm;
    return f;
  }();
  return f;
}

ir::Graph copy_weights(const ir::Graph& g) {
  ir::Graph c = g;
  for (auto& [name, t] : c.initializers) t = t.clone();
  return c;
}

TrainOptions quick(uint64_t seed = 7) {
  TrainOptions o;
  o.epochs = 3;
  o.batch = 64;
  o.seed = seed;
  o.progress = false;
  o.optimizer.lr = 0.05;
  return o;
}

TEST(TrainerTest, AdapterTrainingLowersTheLossAndBeatsChance) {
  const Fixture& f = fixture();
  ir::Graph g = copy_weights(f.hybrid);
  exec::Session before(g);
  const double acc_before = evaluate(before, f.test, f.p).top1;
  TrainOptions o = quick();
  o.epochs = 4;
  const TrainResult r = fit(g, f.train, f.p, o);
  EXPECT_TRUE(r.used_cache);
  const double first = (r.losses[0] + r.losses[1] + r.losses[2]) / 3;
  const size_t n = r.losses.size();
  const double last = (r.losses[n - 1] + r.losses[n - 2] + r.losses[n - 3]) / 3;
  EXPECT_LT(last, first * 0.8) << first << " -> " << last;
  exec::Session after(g);
  const double acc = evaluate(after, f.test, f.p).top1;
  EXPECT_GT(acc, 0.3) << "before training: " << acc_before;
  // Only the adapter changed.
  for (const auto& [name, t] : g.initializers) {
    if (name.rfind("adapter/", 0) != 0) {
      EXPECT_TRUE(at::equal(t, f.hybrid.initializers.at(name))) << name;
    }
  }
}

TEST(TrainerTest, SameSeedSameLossCurve) {
  const Fixture& f = fixture();
  ir::Graph a = copy_weights(f.hybrid), b = copy_weights(f.hybrid);
  const auto ra = fit(a, f.train, f.p, quick(3));
  const auto rb = fit(b, f.train, f.p, quick(3));
  EXPECT_EQ(ra.losses, rb.losses);
  ir::Graph c = copy_weights(f.hybrid);
  EXPECT_NE(fit(c, f.train, f.p, quick(4)).losses, ra.losses);
}

// Training a whole model (as tools/train_bundled.sh does) runs its Dropout in training mode: the
// masks come from the seed too, so two runs agree, even with another thread drawing random
// numbers from the global generator in between.
TEST(TrainerTest, SameSeedSameLossCurveWithDropoutAndAugmentation) {
  const Fixture& f = fixture();
  TrainOptions o = quick(5);
  o.train = "all";
  o.augment = true;
  o.epochs = 1;
  ir::Graph mobile = calibrated_mobile(f.train);
  bool has_dropout = false;
  for (const auto& n : mobile.nodes) has_dropout = has_dropout || n.op_type == "Dropout";
  ASSERT_TRUE(has_dropout);
  ir::Graph a = copy_weights(mobile), b = copy_weights(mobile);
  const auto ra = fit(a, f.train, f.p, o);
  at::rand({1000});  // disturb the global generator between the runs
  const auto rb = fit(b, f.train, f.p, o);
  EXPECT_EQ(ra.losses, rb.losses);
}

TEST(TrainerTest, FeatureCacheGivesTheSameLosses) {
  const Fixture& f = fixture();
  ir::Graph a = copy_weights(f.hybrid), b = copy_weights(f.hybrid);
  TrainOptions cached = quick(), direct = quick();
  direct.cache = false;
  const auto ra = fit(a, f.train, f.p, cached);
  const auto rb = fit(b, f.train, f.p, direct);
  EXPECT_TRUE(ra.used_cache);
  EXPECT_FALSE(rb.used_cache);
  ASSERT_EQ(ra.losses.size(), rb.losses.size());
  for (size_t i = 0; i < ra.losses.size(); ++i) EXPECT_NEAR(ra.losses[i], rb.losses[i], 1e-5 * (1 + rb.losses[i])) << i;
}

// The same with the teacher's losses: without the cache the server model runs on every batch.
TEST(TrainerTest, FeatureCacheGivesTheSameLossesWithTheTeacher) {
  const Fixture& f = fixture();
  ir::Graph a = copy_weights(f.hybrid), b = copy_weights(f.hybrid);
  TrainOptions cached = quick(), direct = quick();
  cached.loss = direct.loss = "ce:1,kd:1,feature:1";
  cached.teacher = direct.teacher = f.server_path;
  direct.cache = false;
  const auto ra = fit(a, f.train, f.p, cached);
  const auto rb = fit(b, f.train, f.p, direct);
  EXPECT_TRUE(ra.used_cache);
  EXPECT_FALSE(rb.used_cache);
  ASSERT_EQ(ra.losses.size(), rb.losses.size());
  for (size_t i = 0; i < ra.losses.size(); ++i) EXPECT_NEAR(ra.losses[i], rb.losses[i], 1e-5 * (1 + rb.losses[i])) << i;
  // Augmented images would reach the hybrid but not the teacher: refused, not trained wrongly.
  TrainOptions augmented = direct;
  augmented.augment = true;
  ir::Graph c = copy_weights(f.hybrid);
  try {
    fit(c, f.train, f.p, augmented);
    FAIL() << "trained with augmentation against an unaugmented teacher";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--augment with the feature or kd loss"), std::string::npos) << e.what();
  }
}

// The default loss: the teacher's losses when the server model is at hand, else labels only.
TEST(TrainerTest, AutoLossUsesTheTeacherWhenItIsAtHand) {
  const Fixture& f = fixture();
  TrainOptions o;
  EXPECT_EQ(o.loss, "auto");
  EXPECT_EQ(auto_loss(f.hybrid, o), "ce");  // stitched in memory: no tail source on disk
  o.teacher = f.server_path;
  EXPECT_EQ(auto_loss(f.hybrid, o), "ce:1,kd:1,feature:1");
  EXPECT_EQ(auto_loss(calibrated_mobile(f.train), o), "ce");  // not a hybrid
  // A hybrid stitched from files names its server model: found, it is the teacher.
  stitch::Options so("conv");
  so.tail_path = f.server_path;
  const ir::Graph server = ir::load(f.server_path);
  ir::Graph h = stitch::stitch(calibrated_mobile(f.train), "36", server, "mixed_5b", so);
  EXPECT_EQ(auto_loss(h, TrainOptions{}), "ce:1,kd:1,feature:1");
  TrainOptions q = quick();
  q.loss = "auto";
  EXPECT_EQ(fit(h, f.train, f.p, q).loss, "ce:1,kd:1,feature:1");
  // Its server model moved away: labels only.
  auto record = nlohmann::json::parse(h.get_metadata(ir::kMetaCut).value());
  record["tail"]["source"] = f.server_path + ".moved";
  h.set_metadata(ir::kMetaCut, record.dump());
  EXPECT_EQ(auto_loss(h, TrainOptions{}), "ce");
}

TEST(TrainerTest, ResumingACheckpointContinuesExactly) {
  const Fixture& f = fixture();
  const std::string dir = ::testing::TempDir() + "/resume";
  std::filesystem::create_directories(dir);
  ir::Graph full = copy_weights(f.hybrid);
  const auto r_full = fit(full, f.train, f.p, quick());

  // A 3-epoch run that dies after its first epoch.
  ir::Graph part = copy_weights(f.hybrid);
  TrainOptions one = quick();
  one.checkpoint = dir + "/ckpt.onnx";
  one.log_jsonl = dir + "/log.jsonl";
  one.on_epoch_end = [](int64_t done) {
    if (done == 1) throw std::runtime_error("interrupted");
  };
  EXPECT_THROW(fit(part, f.train, f.p, one), std::runtime_error);
  ASSERT_TRUE(std::filesystem::exists(dir + "/ckpt.onnx.state"));

  ir::Graph resumed = copy_weights(f.hybrid);  // fresh weights: the checkpoint must restore them
  TrainOptions rest = quick();
  rest.resume = dir + "/ckpt.onnx";
  rest.log_jsonl = dir + "/log.jsonl";
  const auto r_resumed = fit(resumed, f.train, f.p, rest);
  EXPECT_EQ(r_resumed.losses, r_full.losses);
  for (const auto& [name, t] : full.initializers) EXPECT_TRUE(at::equal(t, resumed.initializers.at(name))) << name;
  std::ifstream log(dir + "/log.jsonl");
  int64_t lines = 0, epoch = 0;
  double seconds = 0;
  for (std::string line; std::getline(log, line);) {
    const auto j = nlohmann::json::parse(line);
    ++lines;
    EXPECT_EQ(j.at("step").get<int64_t>(), lines);  // the step count continues across the resume
    EXPECT_DOUBLE_EQ(j.at("loss").get<double>(), r_full.losses.at(static_cast<size_t>(lines - 1)));
    for (const char* key : {"accuracy", "lr", "grad_norm", "images_per_s"}) EXPECT_TRUE(j.contains(key)) << key;
    // Wall time since the run (or the resumed run, from epoch 2) began: rising within a run.
    const double s = j.at("seconds").get<double>();
    const int64_t e = j.at("epoch").get<int64_t>();
    EXPECT_GT(s, 0);
    if (e == epoch || e == 3) {
      EXPECT_GT(s, seconds) << "step " << lines;
    }
    epoch = e;
    seconds = s;
  }
  EXPECT_EQ(epoch, 3);
  EXPECT_EQ(static_cast<size_t>(lines), r_full.losses.size());  // one JSON line per step, across the resume
  std::filesystem::remove_all(dir);
}

// A kill between a checkpoint's two writes leaves the new optimizer state beside the previous
// epoch's model: resuming pairs the model with the state of its own epoch (kept as .state.prev)
// and continues exactly; a model beside no state of its epoch is refused.
TEST(TrainerTest, ResumingATornCheckpointUsesTheStateOfItsEpoch) {
  const Fixture& f = fixture();
  const std::string dir = ::testing::TempDir() + "/torn";
  std::filesystem::create_directories(dir);
  ir::Graph full = copy_weights(f.hybrid);
  const auto r_full = fit(full, f.train, f.p, quick());

  ir::Graph part = copy_weights(f.hybrid);
  TrainOptions two = quick();
  two.checkpoint = dir + "/ckpt.onnx";
  two.on_epoch_end = [&](int64_t done) {
    if (done == 1) std::filesystem::copy_file(dir + "/ckpt.onnx", dir + "/epoch1.onnx");
    if (done == 2) throw std::runtime_error("interrupted");
  };
  EXPECT_THROW(fit(part, f.train, f.p, two), std::runtime_error);
  // As if killed after epoch 2's state was written and before its model was.
  std::filesystem::copy_file(dir + "/epoch1.onnx", dir + "/ckpt.onnx", std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE(std::filesystem::exists(dir + "/ckpt.onnx.state.prev"));

  ir::Graph resumed = copy_weights(f.hybrid);
  TrainOptions rest = quick();
  rest.resume = dir + "/ckpt.onnx";
  const auto r_resumed = fit(resumed, f.train, f.p, rest);
  EXPECT_EQ(r_resumed.losses, r_full.losses);
  for (const auto& [name, t] : full.initializers) EXPECT_TRUE(at::equal(t, resumed.initializers.at(name))) << name;

  // No state of the model's epoch at all.
  std::filesystem::remove(dir + "/ckpt.onnx.state.prev");
  std::filesystem::copy_file(dir + "/epoch1.onnx", dir + "/ckpt.onnx", std::filesystem::copy_options::overwrite_existing);
  ir::Graph again = copy_weights(f.hybrid);
  try {
    fit(again, f.train, f.p, rest);
    ADD_FAILURE() << "resumed with another epoch's optimizer state";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no optimizer state of its epoch"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(TrainerTest, FeatureAndDistillationLossesTrainTheAdapter) {
  const Fixture& f = fixture();
  for (const char* loss : {"feature", "kd", "ce:1,feature:1,kd:0.5"}) {
    SCOPED_TRACE(loss);
    ir::Graph g = copy_weights(f.hybrid);
    TrainOptions o = quick();
    o.loss = loss;
    o.teacher = f.server_path;
    const TrainResult r = fit(g, f.train, f.p, o);
    EXPECT_TRUE(r.used_cache);  // teacher targets are cached with the head's features
    const size_t n = r.losses.size();
    EXPECT_LT(r.losses[n - 1] + r.losses[n - 2], r.losses[0] + r.losses[1]);
  }
  ir::Graph plain = zoo::mobilenet_v1({});
  TrainOptions kd = quick();
  kd.loss = "kd";
  kd.train = "all";
  EXPECT_THROW(fit(plain, f.train, f.p, kd), Error);  // kd needs a hybrid and its server
}

TEST(TrainerTest, LeastSquaresInitLowersTheFeatureError) {
  const Fixture& f = fixture();
  // A linear adapter into the same cut, stitched from the fixture's sources.
  ir::Graph mobile = calibrated_mobile(f.train);
  ir::Graph server = ir::load(f.server_path);
  ir::Graph h = stitch::stitch(mobile, "36", server, "mixed_5b", {"linear"});
  auto feature_error = [&](const ir::Graph& g) {
    TrainOptions o = quick();
    o.loss = "feature";
    o.teacher = f.server_path;
    o.epochs = 1;
    o.optimizer.lr = 1e-12;  // measure, do not learn
    ir::Graph c = copy_weights(g);
    return fit(c, data::head(f.train, 256), f.p, o).losses.front();
  };
  const double before = feature_error(h);
  EXPECT_EQ(lsq_init(h, f.train, f.p, f.server_path, 256), 1);
  const double after = feature_error(h);
  EXPECT_LT(after, before * 0.5) << before << " -> " << after;
}

TEST(TrainerTest, BadOptionsAreErrors) {
  const Fixture& f = fixture();
  ir::Graph g = copy_weights(f.hybrid);
  TrainOptions o = quick();
  o.train = "(";
  EXPECT_THROW(fit(g, f.train, f.p, o), Error);
  o.train = "no_such_weight";
  EXPECT_THROW(fit(g, f.train, f.p, o), Error);
  o.train = "adapter";
  o.resume = "/nonexistent/ckpt.onnx";
  EXPECT_THROW(fit(g, f.train, f.p, o), Error);
  ir::Graph plain = zoo::mobilenet_v1({});
  EXPECT_THROW(select_trainable(plain, "adapter"), Error);  // no graft.trainable
}

// A bottleneck one channel wide (the bundled pair's first cut points): its encoder's BatchNorm
// scale and bias are single numbers, and they train.
TEST(TrainerTest, OneChannelBatchNormTrains) {
  const ir::Graph mobile = ir::load(std::string(GRAFT_MODELS) + "/mobile.onnx");
  const ir::Graph server = ir::load(std::string(GRAFT_MODELS) + "/server.onnx");
  const ir::Graph h = stitch::stitch(mobile, "conv1_relu", server, "activation", {"bottleneck"});
  const std::vector<std::string> trained = select_trainable(h, "adapter");
  EXPECT_EQ(h.initializers.at("adapter/1_bn/gamma").numel(), 1);
  for (const char* name : {"adapter/0_conv/kernel", "adapter/1_bn/gamma", "adapter/1_bn/beta", "adapter/5_conv/kernel",
                           "adapter/6_bn/gamma", "adapter/6_bn/beta"}) {
    EXPECT_NE(std::find(trained.begin(), trained.end(), name), trained.end()) << name;
  }
  EXPECT_EQ(trained.size(), 6u);  // not the statistics, not the Resize's integer inputs
}

}  // namespace
}  // namespace graft::train
