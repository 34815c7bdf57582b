// The Keras importer on real files written by Keras (tests/data/keras/) and on broken ones.
// Layer semantics against TensorFlow.js are tested by tests/integration/keras_tfjs.sh.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/ir/shapes.h"
#include "graft/ir/summary.h"
#include "graft/keras/keras.h"

namespace graft::keras {
namespace {

namespace fs = std::filesystem;
const std::string kDir = std::string(GRAFT_TEST_DATA) + "/keras/";

ir::Summary summary_of(ir::Graph g) {
  ir::fix_batch(g, 1);
  ir::infer_shapes(g);
  return ir::summarize(g);
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

std::vector<std::string> config_layer_names(const nlohmann::json& j) {
  std::vector<std::string> names;
  for (const auto& l : j["config"]["layers"]) names.push_back(l["name"]);
  return names;
}

// The message of the graft::Error fn throws ("" if none); any other exception fails the test.
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
    return m;
  }
  return "";
}

std::string temp_copy(const std::string& from, const std::string& name) {
  const std::string to = ::testing::TempDir() + "/" + name;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
  return to;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(KerasImportTest, MobileNetConfigKeepsKerasNamesIndicesAndParameters) {
  const std::string path = kDir + "kotlindl_mobilenet.json";
  const auto names = config_layer_names(read_json(path));
  const ir::Graph g = import_model(path);
  // keras.applications' MobileNet: "tf" preprocessing (x / 127.5 - 1) recorded.
  const auto pre = nlohmann::json::parse(g.get_metadata("graft.preprocess").value_or("{}"));
  EXPECT_EQ(pre.value("mode", ""), "tf");
  EXPECT_EQ(pre["size"], nlohmann::json({224, 224}));
  ImportOptions caffe;
  caffe.preprocess = "caffe";
  const auto bgr = nlohmann::json::parse(import_model(path, caffe).get_metadata("graft.preprocess").value_or("{}"));
  EXPECT_EQ(bgr.value("channel_order", ""), "BGR");
  const ir::Summary s = summary_of(g);
  ASSERT_EQ(s.rows.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(s.rows[i].name, names[i]) << i;
    EXPECT_EQ(s.rows[i].index, static_cast<int64_t>(i));
  }
  EXPECT_EQ(s.params, 4253864);
  EXPECT_EQ(s.non_trainable, 21888);
  EXPECT_EQ(s.rows[37].name, "conv_pad_6");  // this Keras 2.2.4 MobileNet has conv1_pad
  EXPECT_EQ(ir::shape_str(s.rows[37].output_shapes[0]), "(1, 256, 29, 29)");
}

TEST(KerasImportTest, InceptionResNetV2ConfigKeepsKerasNamesIndicesAndParameters) {
  const std::string path = kDir + "kotlindl_inceptionresnetv2.json";
  const auto names = config_layer_names(read_json(path));
  ASSERT_EQ(names.size(), 782u);
  const ir::Summary s = summary_of(import_model(path));
  ASSERT_EQ(s.rows.size(), names.size());  // the Lambda and softmax-Dense layers: one row each
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(s.rows[i].name, names[i]) << i;
  EXPECT_EQ(s.params, 55873736);
  EXPECT_EQ(s.non_trainable, 60544);
  EXPECT_EQ(s.rows[610].name, "batch_normalization_157");
  EXPECT_EQ(ir::shape_str(s.rows[610].output_shapes[0]), "(1, 384, 8, 8)");
  EXPECT_EQ(s.rows[611].name, "batch_normalization_159");
  EXPECT_EQ(ir::shape_str(s.rows[611].output_shapes[0]), "(1, 288, 8, 8)");
}

// Keras' model.layers rule (depth from the outputs, ties by first visit) reproduces the order a
// real Keras wrote, for all 782 layers of InceptionResNetV2.
TEST(KerasOrderTest, ReproducesTheOrderKerasWrote) {
  const nlohmann::json j = read_json(kDir + "kotlindl_inceptionresnetv2.json");
  const auto names = config_layer_names(j);
  std::map<std::string, int> index;
  for (size_t i = 0; i < names.size(); ++i) index[names[i]] = static_cast<int>(i);
  // Present the layers shuffled, so the order cannot come from the list itself.
  std::vector<int> perm(names.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(7));
  std::vector<int> position(names.size());
  for (size_t p = 0; p < perm.size(); ++p) position[static_cast<size_t>(perm[p])] = static_cast<int>(p);
  std::vector<std::vector<int>> inputs(names.size());
  for (const auto& l : j["config"]["layers"]) {
    for (const auto& call : l["inbound_nodes"]) {
      for (const auto& r : call) {
        inputs[static_cast<size_t>(position[static_cast<size_t>(index.at(l["name"]))])].push_back(
            position[static_cast<size_t>(index.at(r[0].get<std::string>()))]);
      }
    }
  }
  const std::vector<int> order =
      model_layers_order(inputs, {position[static_cast<size_t>(index.at("predictions"))]});
  ASSERT_EQ(order.size(), names.size());
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(perm[static_cast<size_t>(order[i])], static_cast<int>(i)) << names[i];
  }
}

TEST(KerasImportTest, WeightsOnlyFileWithItsConfig) {
  ImportOptions o;
  o.config_path = kDir + "kotlindl_toyresnet.json";
  ir::Graph g = import_model(kDir + "kotlindl_toyresnet_weights.h5", o);
  // The first kernel, read straight from the file, transposed HWIO -> OIHW.
  hid_t f = H5Fopen((kDir + "kotlindl_toyresnet_weights.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t d = H5Dopen2(f, "conv2d_34/conv2d_34/kernel:0", H5P_DEFAULT);
  ASSERT_GE(d, 0);
  std::vector<float> hwio(3 * 3 * 1 * 32);
  ASSERT_GE(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, hwio.data()), 0);
  H5Dclose(d);
  H5Fclose(f);
  const at::Tensor k = g.initializers.at("conv2d_34/kernel");
  ASSERT_EQ(k.sizes(), (std::vector<int64_t>{32, 1, 3, 3}));
  for (int64_t o = 0; o < 32; o += 7) {
    for (int64_t y = 0; y < 3; ++y) {
      for (int64_t x = 0; x < 3; ++x) {
        EXPECT_EQ(k[o][0][y][x].item<float>(), hwio[static_cast<size_t>((y * 3 + x) * 32 + o)]);
      }
    }
  }
  const ir::Summary s = summary_of(std::move(g));
  EXPECT_EQ(s.rows.back().name, config_layer_names(read_json(o.config_path)).back());
}

TEST(KerasImportTest, RealHdf5FilesOfSeveralKerasVersionsLoad) {
  // Keras 2.13 full model (Sequential), Keras 2.11 full model in a file named .keras, Keras
  // 2.0.6 weights only (fixed-length strings) with its JSON.
  EXPECT_GT(summary_of(import_model(kDir + "hls4ml_conv2d_1layer.h5")).params, 0);
  EXPECT_GT(summary_of(import_model(kDir + "hls4ml_keras_model.keras")).params, 0);
  ImportOptions o;
  o.config_path = kDir + "hls4ml_jetTagger_Conv2D_Small.json";
  const ir::Summary s = summary_of(import_model(kDir + "hls4ml_jetTagger_Conv2D_Small.h5", o));
  EXPECT_GT(s.params, 0);
  EXPECT_EQ(detect(kDir + "hls4ml_keras_model.keras"), Format::kHdf5);  // by content
}

TEST(KerasImportTest, ArchitectureAloneGetsKerasInitialisation) {
  ImportOptions a, b;
  b.seed = 1;
  const ir::Graph g1 = import_model(kDir + "kotlindl_toyresnet.json", a);
  const ir::Graph g2 = import_model(kDir + "kotlindl_toyresnet.json", a);
  const ir::Graph g3 = import_model(kDir + "kotlindl_toyresnet.json", b);
  const at::Tensor& k = g1.initializers.at("conv2d_34/kernel");
  EXPECT_TRUE(k.equal(g2.initializers.at("conv2d_34/kernel")));
  EXPECT_FALSE(k.equal(g3.initializers.at("conv2d_34/kernel")));
  const double limit = std::sqrt(6.0 / (9 * 1 + 9 * 32));  // Glorot uniform
  EXPECT_LE(k.abs().max().item<double>(), limit);
  EXPECT_GT(k.abs().max().item<double>(), 0.5 * limit);
  EXPECT_EQ(g1.initializers.at("conv2d_34/bias").abs().sum().item<double>(), 0.0);
}

TEST(KerasImportTest, Keras3InboundFormBuildsTheSameGraph) {
  const std::string k3 = R"({"class_name": "Functional", "config": {"name": "m", "layers": [
    {"class_name": "InputLayer", "name": "inp", "config": {"batch_shape": [null, 8, 8, 3], "name": "inp"}, "inbound_nodes": []},
    {"class_name": "Conv2D", "name": "c", "config": {"name": "c", "filters": 4, "kernel_size": [3, 3], "padding": "same", "activation": "relu"},
     "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 8, 8, 3], "keras_history": ["inp", 0, 0]}}], "kwargs": {}}]},
    {"class_name": "Add", "name": "s", "config": {"name": "s"},
     "inbound_nodes": [{"args": [[{"class_name": "__keras_tensor__", "config": {"keras_history": ["c", 0, 0]}},
                                  {"class_name": "__keras_tensor__", "config": {"keras_history": ["c", 0, 0]}}]], "kwargs": {}}]}],
    "input_layers": ["inp", 0, 0], "output_layers": [["s", 0, 0]]}, "keras_version": "3.3.3"})";
  const ir::Graph g = import_model(write_temp("k3.json", k3));
  ASSERT_EQ(g.nodes.size(), 3u);  // Conv "c/conv", Relu "c", Add "s"
  EXPECT_EQ(g.nodes[0].name, "c/conv");
  EXPECT_EQ(g.nodes[1].op_type, "Relu");
  EXPECT_EQ(g.nodes[2].inputs, (std::vector<std::string>{"c", "c"}));
  EXPECT_EQ(summary_of(g).rows.size(), 3u);  // input, c, s
}

// Keras 3's Sequential as model.to_json() writes it: no InputLayer (built with build_input_shape),
// a dtype policy object, numpy values as __numpy__ objects, a Functional base model as a layer.
TEST(KerasImportTest, Keras3SequentialWithANestedFunctional) {
  const std::string k3 = R"({"module": "keras", "class_name": "Sequential", "config": {"name": "seq",
    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
    "layers": [
      {"module": "keras.src.models.functional", "class_name": "Functional", "name": "base", "config": {"name": "base",
        "layers": [
          {"class_name": "InputLayer", "name": "x", "config": {"batch_shape": [null, 6, 6, 2], "name": "x"}, "inbound_nodes": []},
          {"class_name": "Conv2D", "name": "c", "config": {"name": "c", "filters": 3, "kernel_size": 3, "padding": "same",
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}},
           "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["x", 0, 0]}}], "kwargs": {}}]},
          {"class_name": "ReLU", "name": "r", "config": {"name": "r",
             "max_value": {"class_name": "__numpy__", "config": {"value": 6.0, "dtype": "float32"}}},
           "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["c", 0, 0]}}], "kwargs": {}}]}],
        "input_layers": ["x", 0, 0], "output_layers": ["r", 0, 0]}},
      {"module": "keras.layers", "class_name": "GlobalAveragePooling2D", "config": {"name": "gap", "keepdims": true}},
      {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flat"}},
      {"module": "keras.layers", "class_name": "Dense", "config": {"name": "out", "units": 4, "activation": "softmax"}}],
    "build_input_shape": [null, 6, 6, 2]}})";
  const ir::Graph g = import_model(write_temp("k3seq.json", k3));
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(ir::shape_str(g.value(g.inputs[0]).shape), "(N, 2, 6, 6)");
  EXPECT_GE(g.find_node("base/c"), 0);
  const int relu = g.find_node("base/r");
  ASSERT_GE(relu, 0);
  EXPECT_EQ(g.nodes[static_cast<size_t>(relu)].op_type, "Clip");
  EXPECT_EQ(g.initializers.at("base/r/max").item<float>(), 6.0f);
  EXPECT_EQ(g.outputs, std::vector<std::string>{"out"});
  EXPECT_EQ(summary_of(g).params, 2 * 3 * 9 + 3 + 3 * 4 + 4);
}

// Keras counts an adapted Normalization's mean, variance and sample count as non-trainable
// parameters (2C + 1); given in the config, they are constants (0).
TEST(KerasImportTest, NormalizationParametersAsKerasCountsThem) {
  auto model = [](const std::string& normalization) {
    return R"({"class_name": "Functional", "config": {"name": "m", "layers": [
      {"class_name": "InputLayer", "name": "x", "config": {"batch_input_shape": [null, 4, 4, 3]}, "inbound_nodes": []},
      {"class_name": "Normalization", "name": "n", "config": )" + normalization + R"(, "inbound_nodes": [[["x", 0, 0, {}]]]}],
      "input_layers": [["x", 0, 0]], "output_layers": [["n", 0, 0]]}})";
  };
  const ir::Summary adapted = summary_of(import_model(write_temp("na.json", model(R"({"name": "n", "axis": -1})"))));
  EXPECT_EQ(adapted.params, 7);
  EXPECT_EQ(adapted.non_trainable, 7);
  const ir::Summary given = summary_of(import_model(
      write_temp("ng.json", model(R"({"name": "n", "axis": -1, "mean": [1, 2, 3], "variance": [1, 4, 9]})"))));
  EXPECT_EQ(given.params, 0);
}

TEST(KerasImportTest, BadFilesAreOneLineErrorsNamingTheFault) {
  const std::string toy = kDir + "kotlindl_toyresnet_weights.h5";
  ImportOptions with_config;
  with_config.config_path = kDir + "kotlindl_toyresnet.json";

  // Truncated.
  const std::string truncated = write_temp("trunc.h5", read_file(toy).substr(0, 3000));
  EXPECT_NE(error_of([&] { import_model(truncated, with_config); }).find("trunc.h5"), std::string::npos);

  // A weights-only file without its config says how to give it.
  EXPECT_NE(error_of([&] { import_model(toy); }).find("--keras-config"), std::string::npos);

  // A missing layer group.
  const std::string missing = temp_copy(toy, "missing.h5");
  {
    hid_t f = H5Fopen(missing.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "conv2d_35", H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  const std::string m = error_of([&] { import_model(missing, with_config); });
  EXPECT_NE(m.find("conv2d_35"), std::string::npos) << m;

  // A weight of the wrong shape.
  const std::string wrong = temp_copy(toy, "wrong.h5");
  {
    hid_t f = H5Fopen(wrong.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "conv2d_35/conv2d_35/kernel:0", H5P_DEFAULT), 0);
    hsize_t dims[4] = {3, 3, 32, 16};
    hid_t space = H5Screate_simple(4, dims, nullptr);
    hid_t d = H5Dcreate2(f, "conv2d_35/conv2d_35/kernel:0", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(f);
  }
  const std::string w = error_of([&] { import_model(wrong, with_config); });
  EXPECT_NE(w.find("conv2d_35"), std::string::npos) << w;
  EXPECT_NE(w.find("(3, 3, 32, 16)"), std::string::npos) << w;
  EXPECT_NE(w.find("(3, 3, 32, 64)"), std::string::npos) << w;

  // A config and a weights file that do not belong together.
  ImportOptions other;
  other.config_path = kDir + "hls4ml_jetTagger_Conv2D_Small.json";
  EXPECT_NE(error_of([&] { import_model(toy, other); }), "");

  // An unsupported layer, and a Python Lambda.
  nlohmann::json j = read_json(kDir + "kotlindl_toyresnet.json");
  j["config"]["layers"][1]["class_name"] = "Conv3D";
  const std::string u = error_of([&] { import_model(write_temp("conv3d.json", j.dump())); });
  EXPECT_NE(u.find("conv2d_34"), std::string::npos) << u;
  EXPECT_NE(u.find("Conv3D"), std::string::npos) << u;
  EXPECT_NE(u.find("supports"), std::string::npos) << u;
  j = read_json(kDir + "kotlindl_toyresnet.json");
  j["config"]["layers"][1]["class_name"] = "Lambda";
  j["config"]["layers"][1]["config"] = {{"name", "conv2d_34"}, {"function", "4wEAAAA..."}, {"function_type", "lambda"}};
  const std::string l = error_of([&] { import_model(write_temp("lambda.json", j.dump())); });
  EXPECT_NE(l.find("Lambda"), std::string::npos) << l;
  EXPECT_NE(l.find("Python"), std::string::npos) << l;

  // A TF function graft does not run.
  j = read_json(kDir + "kotlindl_toyresnet.json");
  j["config"]["layers"][1]["class_name"] = "TFOpLambda";
  j["config"]["layers"][1]["config"] = {{"name", "conv2d_34"}, {"function", "linalg.matmul"}};
  const std::string tf = error_of([&] { import_model(write_temp("tfop.json", j.dump())); });
  EXPECT_NE(tf.find("linalg.matmul"), std::string::npos) << tf;

  // Not JSON at all, and JSON that is no model.
  EXPECT_NE(error_of([&] { import_model(write_temp("bad.json", "{\"class_name\": ")); }), "");
  EXPECT_NE(error_of([&] { import_model(write_temp("other.json", "{\"a\": 1}")); }), "");
  EXPECT_NE(error_of([&] { import_model("/nonexistent/model.h5"); }), "");
}

// A model file cannot make graft read other files: HDF5 external links, datasets stored in
// external files, virtual datasets and TensorFlow.js weight shards outside model.json's folder
// are refused with one line naming the file and the object.
TEST(KerasImportTest, FilesThatPointElsewhereAreRefused) {
  const std::string toy = kDir + "kotlindl_toyresnet_weights.h5";
  ImportOptions with_config;
  with_config.config_path = kDir + "kotlindl_toyresnet.json";
  // What an attacker would have graft read: another HDF5 file and raw bytes.
  const std::string outside = ::testing::TempDir() + "/outside.h5";
  {
    hid_t f = H5Fcreate(outside.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hsize_t dims[1] = {4};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t d = H5Dcreate2(f, "secret", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const float v[4] = {1, 2, 3, 4};
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(f);
  }
  const std::string raw = write_temp("outside.bin", std::string(64, '\1'));
  const auto edit = [&](const std::string& name, const std::function<void(hid_t)>& change) {
    const std::string path = temp_copy(toy, name);
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    EXPECT_GE(f, 0);
    change(f);
    H5Fclose(f);
    return path;
  };
  const auto expect_refused = [&](const std::string& path, const std::string& what) {
    const std::string m = error_of([&] { import_model(path, with_config); });
    EXPECT_NE(m.find(fs::path(path).filename().string()), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
    EXPECT_NE(m.find("conv2d_35/extra"), std::string::npos) << m;
  };

  expect_refused(edit("external_link.h5",
                      [&](hid_t f) {
                        EXPECT_GE(H5Lcreate_external(outside.c_str(), "secret", f, "conv2d_35/extra", H5P_DEFAULT,
                                                     H5P_DEFAULT),
                                  0);
                      }),
                 "external link");
  // A float dataset conv2d_35/extra of `n` elements whose storage `set_storage` sets.
  const auto dataset_with = [&](hsize_t n, const std::function<herr_t(hid_t dcpl, hid_t space)>& set_storage) {
    return [=](hid_t f) {
      hsize_t dims[1] = {n};
      hid_t space = H5Screate_simple(1, dims, nullptr);
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      EXPECT_GE(set_storage(dcpl, space), 0);
      hid_t d = H5Dcreate2(f, "conv2d_35/extra", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      EXPECT_GE(d, 0);
      H5Dclose(d);
      H5Pclose(dcpl);
      H5Sclose(space);
    };
  };
  expect_refused(edit("external_storage.h5",
                      dataset_with(16, [&](hid_t dcpl, hid_t) { return H5Pset_external(dcpl, raw.c_str(), 0, 64); })),
                 "external files");
  expect_refused(edit("virtual.h5", dataset_with(4,
                                                 [&](hid_t dcpl, hid_t space) {
                                                   return H5Pset_virtual(dcpl, space, outside.c_str(), "secret", space);
                                                 })),
                 "virtual dataset");

  // TensorFlow.js: shard paths absolute or climbing out of model.json's folder.
  const fs::path dir = fs::path(::testing::TempDir()) / "tfjs_model";
  fs::create_directories(dir);
  for (const std::string& bad : {raw, std::string("../outside.bin"), std::string("shards/../../outside.bin")}) {
    nlohmann::json model;
    model["modelTopology"] = read_json(kDir + "kotlindl_toyresnet.json");
    model["weightsManifest"] = nlohmann::json::array(
        {{{"paths", {bad}}, {"weights", {{{"name", "conv2d_34/kernel"}, {"shape", {3, 3, 1, 32}}, {"dtype", "float32"}}}}}});
    const std::string path = (dir / "model.json").string();
    std::ofstream(path) << model.dump();
    const std::string m = error_of([&] { import_model(path); });
    EXPECT_NE(m.find("model.json"), std::string::npos) << m;
    EXPECT_NE(m.find(bad), std::string::npos) << m;
    EXPECT_NE(m.find("beside model.json"), std::string::npos) << m;
  }
}

// Random bit flips in real Keras files: each either loads or is a graft::Error (no crash, no
// other exception, no hang).
TEST(KerasImportTest, BitFlippedFilesNeverCrash) {
  struct Case {
    std::string file, config;
  };
  const std::vector<Case> cases = {{"hls4ml_conv2d_1layer.h5", ""},
                                   {"hls4ml_keras_model.keras", ""},
                                   {"hls4ml_jetTagger_Conv2D_Small.h5", "hls4ml_jetTagger_Conv2D_Small.json"}};
  std::mt19937 rng(2026);
  int loaded = 0, refused = 0;
  for (const Case& c : cases) {
    const std::string bytes = read_file(kDir + c.file);
    ImportOptions o;
    if (!c.config.empty()) o.config_path = kDir + c.config;
    for (int i = 0; i < 700; ++i) {
      std::string flipped = bytes;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) {
        flipped[rng() % flipped.size()] ^= static_cast<char>(1 << (rng() % 8));
      }
      const std::string path = write_temp("flip.h5", flipped);
      try {
        import_model(path, o);
        ++loaded;
      } catch (const Error&) {
        ++refused;
      }
    }
  }
  EXPECT_EQ(loaded + refused, 2100);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace graft::keras
