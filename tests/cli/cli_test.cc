// The graft command line as a user meets it: exit codes (0 ok, 2 bad input, 1 internal),
// results on stdout, one-line errors on stderr.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cli_fixture.h"
#include "graft/core/file.h"
#include "graft/data/dataset.h"
#include "graft/data/image.h"
#include "graft/data/npy.h"

namespace {

using graft::testing::CliTest;
using graft::testing::Result;
using graft::testing::slurp;
namespace fs = std::filesystem;

TEST_F(CliTest, VersionAndHelp) {
  Result r = graft("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("graft "), std::string::npos);
  r = graft("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("summary"), std::string::npos);
  EXPECT_NE(r.out.find("zoo"), std::string::npos);
  r = graft("summary --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--input-shape"), std::string::npos);
}

TEST_F(CliTest, BadArgumentsExit2WithOneLine) {
  for (const char* args : {"", "nonsense", "summary", "zoo mobilenet_v1", "summary --bogus x",
                           "zoo resnet -o x.onnx", "zoo mobilenet_v1 --alpha 0.3 -o x.onnx",
                           "zoo inception_resnet_v2 --alpha 0.5 -o x.onnx",
                           "zoo inception_resnet_v2 --repeats 1,2 -o x.onnx"}) {
    Result r = graft(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("graft: error: ", 0), 0u) << args << ": " << r.err;
  }
}

TEST_F(CliTest, SummaryOfMissingTruncatedAndJunkFiles) {
  Result r = graft("summary /nonexistent/m.onnx");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1);
  EXPECT_NE(r.err.find("/nonexistent/m.onnx"), std::string::npos);

  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 64 -o " + file("small.onnx")).code, 0);
  const std::string bytes = slurp(file("small.onnx"));
  {
    std::ofstream(file("trunc.onnx"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    std::mt19937 rng(5);
    std::string junk(5000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    std::ofstream(file("junk.onnx"), std::ios::binary) << junk;
  }
  for (const char* name : {"trunc.onnx", "junk.onnx"}) {
    r = graft("summary " + file(name));
    EXPECT_EQ(r.code, 2) << name << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << name << ": " << r.err;
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
  r = graft("summary " + dir_);
  EXPECT_EQ(r.code, 2);
}

TEST_F(CliTest, ZooMobileNetSummaryShowsTheCanonicalRow) {
  ASSERT_EQ(graft("zoo mobilenet_v1 -o " + file("m.onnx")).code, 0);
  Result r = graft("summary " + file("m.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Total params: 4,253,864"), std::string::npos);
  EXPECT_NE(r.out.find("Non-trainable params: 21,888"), std::string::npos);
  std::istringstream lines_in(r.out);
  bool found = false;
  for (std::string line; std::getline(lines_in, line);) {
    if (line.find(" conv_pad_6 ") != std::string::npos) {
      found = true;
      EXPECT_EQ(line.substr(0, line.find_first_not_of(' ')).size() + 2,
                line.find("36") + 2);  // row index 36 comes first
      EXPECT_NE(line.find("(1, 256, 29, 29)"), std::string::npos) << line;
      EXPECT_NE(line.find("conv_pw_5_relu"), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(found);

  r = graft("summary --json " + file("m.onnx"));
  ASSERT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"][36]["name"], "conv_pad_6");
  EXPECT_EQ(j["rows"][36]["index"], 36);
  EXPECT_EQ(j["rows"][36]["outputs"][0]["shape"], nlohmann::json({1, 256, 29, 29}));
  EXPECT_EQ(j["totals"]["params"], 4253864);
  EXPECT_EQ(j["totals"]["non_trainable_params"], 21888);
}

TEST_F(CliTest, InputShapeOption) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 64 -o " + file("s.onnx")).code, 0);
  Result r = graft("summary --json --input-shape 4x3x64x64 " + file("s.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"].back()["outputs"][0]["shape"], nlohmann::json({4, 1000}));
  r = graft("summary --input-shape nope=1x3x64x64 " + file("s.onnx"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'nope'"), std::string::npos) << r.err;
  r = graft("summary --input-shape 1x5x64x64 " + file("s.onnx"));
  EXPECT_EQ(r.code, 2) << r.err;  // 5 channels cannot feed conv1's 3-channel kernel
  EXPECT_EQ(lines(r.err), 1) << r.err;
}

TEST_F(CliTest, RunSavesOutputsAndIntermediates) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 --classes 10 -o " + file("r.onnx")).code, 0);
  graft::data::write_npy(at::rand({2, 3, 32, 32}), file("x.npy"));
  Result r = graft("run " + file("r.onnx") + " --input " + file("x.npy") + " --output " +
                   file("y.npy") + " --output conv_pad_6=" + file("p.npy") + " --top 3 --check-finite");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(graft::data::read_npy(file("y.npy")).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(graft::data::read_npy(file("p.npy")).sizes(), (std::vector<int64_t>{2, 64, 5, 5}));
  EXPECT_NE(r.out.find("item 1"), std::string::npos);  // top-3 printed per batch item
}

TEST_F(CliTest, RunBadInputsExit2WithOneLine) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 --classes 10 -o " + file("r2.onnx")).code, 0);
  graft::data::write_npy(at::rand({1, 3, 31, 32}), file("wrong.npy"));
  graft::data::write_npy(at::rand({1, 3, 32, 32}), file("ok.npy"));
  std::ofstream(file("junk.npy")) << "not numpy";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--input " + file("wrong.npy"), "expected float32 (N, 3, 32, 32), got Float (1, 3, 31, 32)"},
      {"--input " + file("junk.npy"), "junk.npy"},
      {"", "missing input 'input_1'"},
      {"--input " + file("ok.npy") + " --output nope=" + file("n.npy"), "no tensor named 'nope'"},
      {"--input other=" + file("ok.npy"), "'other' is not an input"},
  };
  for (const auto& [args, expect] : cases) {
    Result r = graft("run " + file("r2.onnx") + " " + args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, CutsAdviceAndCutFiles) {
  ASSERT_EQ(graft("zoo inception_resnet_v2 --input 75 --width 0.25 --repeats 1,2,1 -o " + file("i.onnx")).code, 0);
  Result r = graft("cuts " + file("i.onnx") + " --near activation_17");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("is not a cut point"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mixed_5b"), std::string::npos) << r.out;      // the cut point before
  EXPECT_NE(r.out.find("61  block35_1  block35_1"), std::string::npos) << r.out;  // the one after (Keras index)
  r = graft("cuts " + file("i.onnx") + " --json --shape 80x7x7");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["cut_points"].size(), 5u);
  EXPECT_EQ(j["ranked"][0]["distance"], 0.0);  // mixed_5b at 75 px, width 0.25: 80x7x7
  EXPECT_EQ(j["ranked"][0]["tensor"], "mixed_5b");

  r = graft("cut " + file("i.onnx") + " --at mixed_5b --head " + file("h.onnx") + " --tail " + file("t.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = graft("summary --json " + file("t.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"][0]["name"], "mixed_5b");
  EXPECT_EQ(j["rows"][0]["outputs"][0]["shape"], nlohmann::json({1, 80, 7, 7}));
  // A multi-tensor frontier: the tail gets two inputs.
  r = graft("cut " + file("i.onnx") + " --at activation_17 --tail " + file("t2.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("inputs mixed_5b"), std::string::npos) << r.out;
}

TEST_F(CliTest, BadCutsExit2WithOneLine) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 -o " + file("c.onnx")).code, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cut C --at nope --tail T", "no layer named 'nope'"},
      {"cut C --at 5000 --tail T", "no layer 5000"},
      {"cut C --at tensor:input_1 --head T", "graph input"},
      {"cut C --at tensor:conv1/kernel --head T", "initializer"},
      {"cut C --at 36", "nothing to write"},
      {"cuts C --near nope", "no layer named 'nope'"},
      {"cuts C --shape 3x3", "bad --shape"},
  };
  for (auto [args, expect] : cases) {
    args.replace(args.find(" C "), 3, " " + file("c.onnx") + " ");
    if (args.find(" T") != std::string::npos) args.replace(args.find(" T"), 2, " " + file("out.onnx"));
    Result r = graft(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(file("out.onnx")));  // nothing half-written
}


TEST_F(CliTest, EvalReportsAccuracyAndConfusion) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 --channels 1 --classes 10 -o " + file("e.onnx")).code, 0);
  Result r = graft("eval " + file("e.onnx") + " --limit 300 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 300);
  const auto& m = j["models"][0];
  EXPECT_GE(m["top5"].get<double>(), m["top1"].get<double>());
  int64_t total = 0;
  for (const auto& row : m["confusion"]) {
    for (const auto& v : row) total += v.get<int64_t>();
  }
  EXPECT_EQ(total, 300);
  // A model with fewer classes than the labels: the label is named.
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 --channels 1 --classes 5 -o " + file("e5.onnx")).code, 0);
  r = graft("eval " + file("e5.onnx") + " --limit 300");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("outside the model's 5 classes"), std::string::npos) << r.err;
  r = graft("eval " + file("e.onnx") + " --data /nonexistent");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
}

// The main job on the bundled pair, shortened (a subset, one epoch): every step runs, the table
// and the JSON carry the figures, the advisor refuses the layer inside the block and names the
// cut point the adapter then targets, and training the adapter beats the untrained hybrid.
TEST_F(CliTest, DemoOnTheBundledPair) {
  const std::string out = file("demo");
  Result r = graft("--threads 2 demo --models " GRAFT_MODELS " --out " + out +
                   " --limit 6000 --eval-limit 1000 --epochs 1 --no-progress");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* step : {"Refused:", "Nearest cut points", "Best candidate of each family", "hybrid, adapter trained",
                           "Bytes/image at split"}) {
    EXPECT_NE(r.out.find(step), std::string::npos) << step << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("Wrote " + out + "/demo.json"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(slurp(out + "/demo.json"));
  for (const char* model : {"mobile", "server", "hybrid_untrained", "hybrid"}) {
    const double top1 = j[model]["top1"].get<double>();
    EXPECT_GE(top1, 0.0) << model;
    EXPECT_LE(top1, 1.0) << model;
  }
  EXPECT_GT(j["hybrid"]["top1"].get<double>(), j["hybrid_untrained"]["top1"].get<double>() + 0.2);
  EXPECT_GT(j["hybrid"]["device_macs"].get<int64_t>(), 0);
  EXPECT_GT(j["hybrid"]["server_macs"].get<int64_t>(), 0);
  EXPECT_EQ(j["hybrid"]["split_bytes"].get<int64_t>(), 64 * 8 * 8 * 4);  // conv_pad_6 of MobileNet 0.25 at 56 px
  EXPECT_FALSE(j["refused_cut"]["is_cut_point"].get<bool>());
  EXPECT_EQ(j["refused_cut"]["cut_point_before"], j["server"]["cut"]);
  EXPECT_TRUE(fs::exists(out + "/hybrid.onnx"));
  EXPECT_TRUE(fs::exists(out + "/hybrid_untrained.onnx"));
  // The report: the table, the hybrid's strip with its split, the training curves, the three
  // confusion matrices; no script.
  EXPECT_NE(r.out.find("Wrote " + out + "/report.html"), std::string::npos) << r.out;
  const std::string html = slurp(out + "/report.html");
  EXPECT_EQ(html.find("<script"), std::string::npos);
  for (const char* part : {"hybrid, adapter trained", "split: a/conv_pad_6", "Training loss", "Confusion matrix: hybrid",
                           "Confusion matrix: mobile", "Confusion matrix: server"}) {
    EXPECT_NE(html.find(part), std::string::npos) << part;
  }
  const auto evals = nlohmann::json::parse(slurp(out + "/eval.json"));
  ASSERT_EQ(evals["models"].size(), 3u);
  EXPECT_DOUBLE_EQ(evals["models"][0]["top1"].get<double>(), j["hybrid"]["top1"].get<double>());
  EXPECT_EQ(evals["models"][0]["confusion"].size(), 10u);
  EXPECT_EQ(evals["classes"].size(), 10u);

  r = graft("demo --models " + file("no_such_dir"));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("tools/train_bundled.sh"), std::string::npos) << r.err;
  r = graft("demo --models " GRAFT_MODELS " --out " + out + " --server-cut activation_31 --limit 10");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not a cut point"), std::string::npos) << r.err;
}

// graft train clips the gradient norm to 1 unless told otherwise: the default run is step for
// step the --clip 1 run, and not the --clip 0 one (whose first gradients are larger than 1).
TEST_F(CliTest, TrainClipsTheGradientNormToOneByDefault) {
  const std::string h = file("clip_hybrid.onnx");
  ASSERT_EQ(graft("stitch --head " GRAFT_MODELS "/mobile.onnx@conv_dw_12_relu --tail " GRAFT_MODELS
                  "/server.onnx@block8_2 --adapter conv:k=1,c=520,bias -o " + h).code, 0);
  auto losses = [&](const std::string& name, const std::string& extra, std::vector<double>* norms) {
    const std::string log = file(name + ".jsonl");
    const Result r = graft("--threads 1 train " + h + " --limit 256 --batch 32 --seed 3 --no-progress --log " + log +
                           " -o " + file(name + ".onnx") + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<double> out;
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      out.push_back(j.at("loss").get<double>());
      if (norms) norms->push_back(j.at("grad_norm").get<double>());
    }
    return out;
  };
  std::vector<double> norms;
  const std::vector<double> by_default = losses("clip_default", "", &norms);
  const std::vector<double> one = losses("clip_one", " --clip 1", nullptr);
  const std::vector<double> off = losses("clip_off", " --clip 0", nullptr);
  ASSERT_EQ(by_default.size(), 8u);
  ASSERT_GT(norms.front(), 1.0) << "the first gradient must be large enough for clipping to matter";
  EXPECT_EQ(by_default, one);
  ASSERT_EQ(off.size(), by_default.size());
  EXPECT_EQ(off.front(), by_default.front());  // the first step's loss is computed before any update
  EXPECT_NE(off.back(), by_default.back());
  const Result bad = graft("train " + h + " --clip -1 -o " + file("clip_bad.onnx"));
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--clip"), std::string::npos) << bad.err;
}

TEST_F(CliTest, BenchReportsLatencyPercentilesAndRss) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 --classes 10 -o " + file("b.onnx")).code, 0);
  Result r = graft("bench " + file("b.onnx") + " --batch 2 --threads 1 --runs 5 --warmup 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"median_ms", "p90_ms", "p99_ms", "images_per_s", "peak_rss_mb"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_GT(j[key].get<double>(), 0.0) << key;
  }
  EXPECT_LE(j["median_ms"].get<double>(), j["p90_ms"].get<double>());
  EXPECT_LE(j["p90_ms"].get<double>(), j["p99_ms"].get<double>());
  EXPECT_NEAR(j["images_per_s"].get<double>(), 2000.0 / j["median_ms"].get<double>(), 1e-6 * j["images_per_s"].get<double>());
  EXPECT_EQ(j["batch"], 2);
  EXPECT_EQ(j["threads"], 1);
  // Every node of a MobileNet runs on oneDNN but the classifier's Flatten (reshape) and Softmax.
  EXPECT_EQ(j["kernels"], "onednn");
  EXPECT_GT(j["onednn_nodes"].get<int>(), 10);
  EXPECT_LE(j["reference_nodes"].get<int>(), 2) << j["reference_ops"].dump();
  r = graft("bench " + file("b.onnx") + " --runs 3 --warmup 0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("latency: median"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("engine: oneDNN runs"), std::string::npos) << r.out;
  r = graft("bench " + file("b.onnx") + " --runs 2 --warmup 0 --no-onednn --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["kernels"], "reference");
  // --profile: every step of the timed runs, by op and one by one.
  r = graft("bench " + file("b.onnx") + " --runs 3 --warmup 1 --profile --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto p = nlohmann::json::parse(r.out)["profile"];
  EXPECT_EQ(p["runs"], 3);
  ASSERT_TRUE(p["ops"].contains("graft.FusedConv")) << p["ops"].dump();
  EXPECT_EQ(p["ops"]["Softmax"]["steps"], 1) << p["ops"].dump();
  double sum = 0;
  for (const auto& st : p["steps"]) {
    EXPECT_FALSE(st["node"].get<std::string>().empty());
    if (st["op"] == "graft.FusedConv") {
      EXPECT_NE(st["kernel"], "aten") << st.dump();
    }
    sum += st["ms"].get<double>();
  }
  EXPECT_NEAR(sum, p["total_ms"].get<double>(), 1e-6 * sum + 1e-9);
  r = graft("bench " + file("b.onnx") + " --runs 2 --warmup 0 --profile");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("slowest steps:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("graft.FusedConv"), std::string::npos) << r.out;
  // Bad input: a missing file, a fixed batch that --batch contradicts.
  r = graft("bench " + file("missing.onnx"));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("missing.onnx"), std::string::npos) << r.err;
  r = graft("bench " + file("b.onnx") + " --input-shape input_1=1x3x32x32 --batch 4 --runs 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("fixed batch of 1"), std::string::npos) << r.err;
}

// The device half then the server half compute what the whole hybrid computes.
TEST_F(CliTest, SplitHalvesComposeToTheHybrid) {
  ASSERT_EQ(graft("zoo mobilenet_v1 --alpha 0.25 --input 32 --classes 10 --seed 2 -o " + file("sm.onnx")).code, 0);
  ASSERT_EQ(graft("zoo inception_resnet_v2 --input 75 --width 0.25 --repeats 1,1,1 --classes 10 -o " + file("si.onnx")).code, 0);
  ASSERT_EQ(graft("stitch --head " + file("sm.onnx") + "@conv_pad_6 --tail " + file("si.onnx") + "@mixed_6a -o " +
                  file("sh.onnx")).code, 0);
  Result r = graft("split " + file("sh.onnx") + " --device " + file("dev.onnx") + " --server " + file("srv.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("at 'a/conv_pad_6'"), std::string::npos) << r.out;
  graft::data::write_npy(at::rand({2, 3, 32, 32}), file("x.npy"));
  ASSERT_EQ(graft("run " + file("sh.onnx") + " --input " + file("x.npy") + " --output predictions=" + file("y.npy")).code, 0);
  r = graft("run " + file("dev.onnx") + " --input " + file("x.npy") + " --output a/conv_pad_6=" + file("f.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = graft("run " + file("srv.onnx") + " --input " + file("f.npy") + " --output predictions=" + file("y2.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(at::allclose(graft::data::read_npy(file("y.npy")), graft::data::read_npy(file("y2.npy")), 1e-5, 1e-7));
  // Both halves describe the split and each other.
  r = graft("summary " + file("srv.onnx") + " --json");
  ASSERT_EQ(r.code, 0);
  // Errors: a tensor inside a block, the same file twice, a model that is not a hybrid.
  r = graft("split " + file("sh.onnx") + " --device " + file("d2.onnx") + " --server " + file("s2.onnx") +
            " --at b/activation_28");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not a cut point"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(file("d2.onnx")));
  r = graft("split " + file("sh.onnx") + " --device " + file("d2.onnx") + " --server " + file("d2.onnx"));
  EXPECT_EQ(r.code, 2);
  r = graft("split " + file("sm.onnx") + " --device " + file("d2.onnx") + " --server " + file("s2.onnx"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--at TENSOR"), std::string::npos) << r.err;
}

}  // namespace

// split -> serve -> infer on loopback, as a user runs it: the server is a separate graft process
// (port 0: it picks a free port and prints it), stopped with SIGTERM at the end.
TEST_F(CliTest, SplitServeInferRoundTrip) {
  const std::string models = GRAFT_MODELS;
  ASSERT_EQ(graft("stitch --head " + models + "/mobile.onnx@conv_pad_6 --tail " + models + "/server.onnx@mixed_6a -o " +
                  file("rt_hybrid.onnx")).code, 0);
  Result r = graft("split " + file("rt_hybrid.onnx") + " --device " + file("rt_dev.onnx") + " --server " +
                   file("rt_srv.onnx") + " --triton-repo " + file("triton"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string config = slurp(file("triton") + "/rt_srv/config.pbtxt");
  EXPECT_NE(config.find("platform: \"onnxruntime_onnx\""), std::string::npos) << config;
  EXPECT_NE(config.find("max_batch_size: 32"), std::string::npos) << config;
  EXPECT_NE(config.find("dynamic_batching"), std::string::npos) << config;
  EXPECT_TRUE(fs::exists(file("triton") + "/rt_srv/1/model.onnx"));

  { std::ofstream(file("token")) << "tok-123\n"; }
  const std::string log = file("serve.log");
  const std::string port = start_server(file("rt_srv.onnx"), "--token-file " + file("token"));
  ASSERT_FALSE(port.empty()) << slurp(log);
  const std::string server = " --server 127.0.0.1:" + port + " --token tok-123";

  graft::data::write_npy(at::rand({3, 1, 56, 56}), file("rt_x.npy"));
  ASSERT_EQ(graft("run " + file("rt_hybrid.onnx") + " --input " + file("rt_x.npy") + " --output " + file("rt_y.npy")).code, 0);
  r = graft("infer " + file("rt_dev.onnx") + server + " --input " + file("rt_x.npy") + " --output " + file("rt_y2.npy") +
            " --stats");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("network + server"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bytes per image: 16384 sent (fp32)"), std::string::npos) << r.out;
  const at::Tensor want = graft::data::read_npy(file("rt_y.npy"));
  EXPECT_TRUE(at::allclose(graft::data::read_npy(file("rt_y2.npy")), want, 1e-5, 1e-6));

  r = graft("infer " + file("rt_dev.onnx") + server + " --input " + file("rt_x.npy") + " --output " + file("rt_y3.npy") +
            " --codec int8 --zstd --stats --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_LT(j["stats"]["bytes_per_image"].get<double>(), 4096.0);  // under a quarter of fp32's 16384
  // The server's receipt-to-reply time contains the model run it reports.
  EXPECT_GE(j["stats"]["server_handler_ms"].get<double>(), j["stats"]["server_compute_ms"].get<double>());
  EXPECT_TRUE(at::allclose(graft::data::read_npy(file("rt_y3.npy")), want, 0.05, 0.05 * want.abs().max().item<double>()));

  // Images: top-k with the hybrid's labels, and each image's PNG size beside the bytes sent.
  const graft::data::Dataset d = graft::data::head(graft::data::open_dataset("fashion-mnist", "test"), 2);
  std::string images;
  int64_t png_bytes = 0;
  for (int i = 0; i < 2; ++i) {
    const std::string png = graft::data::encode_png(d.images[i]);
    png_bytes += static_cast<int64_t>(png.size());
    graft::write_file_atomic(file("img" + std::to_string(i) + ".png"), png);
    images += " " + file("img" + std::to_string(i) + ".png");
  }
  r = graft("infer " + file("rt_dev.onnx") + server + images + " --top 3 --stats --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto ji = nlohmann::json::parse(r.out);
  ASSERT_EQ(ji["top"].size(), 2u);
  EXPECT_EQ(ji["top"][1]["item"], file("img1.png"));
  EXPECT_EQ(ji["top"][0]["classes"].size(), 3u);
  EXPECT_NE(ji["top"][0]["classes"][0]["label"].get<std::string>(), "");
  EXPECT_DOUBLE_EQ(ji["stats"]["png_bytes_per_image"].get<double>(), png_bytes / 2.0);

  // A dataset through the server: accuracy, and the PNG size of the images beside the bytes sent.
  r = graft("infer " + file("rt_dev.onnx") + server + " --data fashion-mnist --limit 64 --batch 16 --codec fp16 --stats");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("top-1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the input image as PNG"), std::string::npos) << r.out;

  // Errors: no token, unknown model, a server that is not there.
  r = graft("infer " + file("rt_dev.onnx") + " --server 127.0.0.1:" + port + " --input " + file("rt_x.npy"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("UNAUTHENTICATED"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  r = graft("infer " + file("rt_dev.onnx") + server + " --model nope --input " + file("rt_x.npy"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown model 'nope'"), std::string::npos) << r.err;
  r = graft("infer " + file("rt_dev.onnx") + " --server 127.0.0.1:1 --timeout-s 5 --input " + file("rt_x.npy"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;

  // SIGTERM: the server stops cleanly and says what it served.
  ASSERT_EQ(stop_server(), 0);
  bool stopped = false;
  for (int i = 0; i < 600 && !stopped; ++i) {
    stopped = slurp(log).find("stopped after") != std::string::npos;
    if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(stopped) << slurp(log);
}
