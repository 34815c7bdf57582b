// PyTorch interop: torchvision models exported by PyTorch's ONNX exporter at opsets 11, 13 and
// 17 (fixtures made at test time by tools/export_torchvision.py) must give PyTorch's outputs:
// max |graft - torch| <= 1e-4 * max |torch|, on the reference kernels and on the optimised
// oneDNN path, which must run every node itself and none on oneDNN's reference kernels.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "graft/exec/session.h"
#include "graft/ir/onnx_io.h"

namespace graft::exec {
namespace {

namespace fs = std::filesystem;

TEST(InteropTest, TorchvisionExportsMatchPyTorch) {
  const fs::path root = GRAFT_INTEROP_DIR;
  ASSERT_TRUE(fs::exists(root / "STAMP"))
      << "interop fixtures missing in " << root << " (the CTest fixture interop_fixtures makes them)";
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory()) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  ASSERT_EQ(dirs.size(), 60u);  // 15 families x (3 opsets with a dynamic batch + opset 13 fixed)
  double worst = 0;
  std::string worst_name;
  for (const auto& dir : dirs) {
    const std::string name = dir.filename().string();
    try {
      ir::Graph g = ir::load((dir / "model.onnx").string());
      at::Tensor x = ir::load_tensor((dir / "test_data_set_0/input_0.pb").string());
      at::Tensor want = ir::load_tensor((dir / "test_data_set_0/output_0.pb").string());
      SessionOptions fast;
      fast.optimize = true;
      for (const SessionOptions& options : {SessionOptions{}, fast}) {
        const std::string label = name + (options.optimize ? " (oneDNN)" : " (reference)");
        Session session(g, options, name);
        at::Tensor got = session.run({{g.inputs[0], x}}).at(g.outputs[0]);
        ASSERT_EQ(got.sizes(), want.sizes()) << label;
        const double scale = want.abs().max().item<double>();
        const double diff = (got - want).abs().max().item<double>();
        EXPECT_LE(diff, 1e-4 * scale) << label << ": max abs difference " << diff
                                      << ", max |reference| " << scale;
        if (options.optimize) {
          ASSERT_TRUE(session.engine_stats().has_value()) << label;
          const EngineStats stats = session.engine_stats().value();
          EXPECT_GT(stats.onednn_nodes, 0) << label;
          // The fast path covers every node of these architectures: nothing on ATen, nothing
          // on oneDNN's reference kernels.
          std::string slow;
          for (const auto& [op, n] : stats.reference_ops) slow += " ATen " + op + " x" + std::to_string(n);
          for (const auto& [op, n] : stats.reference_kernel_ops) slow += " ref:" + op + " x" + std::to_string(n);
          EXPECT_EQ(slow, "") << label;
        }
        if (diff / scale > worst) {
          worst = diff / scale;
          worst_name = label;
        }
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": " << e.what();
    }
  }
  std::printf("largest interop difference: %.3g x max|reference| (%s)\n", worst, worst_name.c_str());
}

}  // namespace
}  // namespace graft::exec
