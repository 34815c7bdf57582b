#include "graft/train/lsq.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "graft/core/error.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"

namespace graft::train {

std::pair<at::Tensor, at::Tensor> fit_linear(const at::Tensor& x, const at::Tensor& t, double ridge) {
  const at::Tensor xd = x.to(at::kDouble), td = t.to(at::kDouble);
  const at::Tensor xa = at::cat({xd, at::ones({xd.size(0), 1}, xd.options())}, 1);  // bias column
  at::Tensor gram = at::matmul(xa.t(), xa);
  at::Tensor reg = at::eye(gram.size(0), gram.options()) * (ridge * std::max(1.0, gram.diagonal().mean().item<double>()));
  reg[gram.size(0) - 1][gram.size(0) - 1] = 0;  // the bias is not shrunk
  const at::Tensor w = at::linalg_solve(gram + reg, at::matmul(xa.t(), td));
  return {w.slice(0, 0, xd.size(1)).to(at::kFloat), w[xd.size(1)].to(at::kFloat)};
}

int lsq_init(ir::Graph& h, const data::Dataset& d, const data::Preprocess& p, const std::string& teacher_path,
             int64_t samples, const std::function<ir::Graph(const std::string&)>& read_model) {
  const auto record = nlohmann::json::parse(h.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
  if (h.get_metadata(ir::kMetaRole) != "hybrid" || !record.is_object() || !record.contains("adapters")) {
    throw Error("--init lsq needs a stitched hybrid with a linear adapter");
  }
  const std::string path = !teacher_path.empty() ? teacher_path : record["tail"].value("source", "");
  if (path.empty()) throw Error("the hybrid does not name its server model; give the teacher model");
  // Each linear branch: its 1x1 convolution, the tensor feeding it, and the server tensor.
  struct Branch {
    int node;
    std::string input, server_tensor;
  };
  std::vector<Branch> branches;
  const auto& adapters = record["adapters"];
  for (size_t i = 0; i < adapters.size(); ++i) {
    if (adapters[i].value("family", "") != "linear") continue;
    const std::string prefix = adapters.size() == 1 ? "adapter/" : "adapter" + std::to_string(i) + "/";
    for (size_t k = 0; k < h.nodes.size(); ++k) {
      const ir::Node& n = h.nodes[k];
      if (n.op_type == "Conv" && n.name.rfind(prefix, 0) == 0 && n.attributes.get_ints("kernel_shape") == std::vector<int64_t>{1, 1}) {
        branches.push_back({static_cast<int>(k), n.inputs[0], adapters[i].value("target", "")});
      }
    }
  }
  if (branches.empty()) throw Error("the hybrid has no linear adapter to initialise (stitch with --adapter linear)");

  const data::Dataset calib = data::head(d, samples);
  ir::Graph tg = read_model ? read_model(path) : ir::load(path);
  const data::Preprocess tp = data::Preprocess::from_metadata(tg, path);
  exec::Session teacher(std::move(tg), {}, path), hybrid(h);
  for (const Branch& b : branches) {
    const ir::Node& conv = h.nodes[static_cast<size_t>(b.node)];
    std::vector<at::Tensor> xs, ts;
    for (int64_t i = 0; i < calib.size(); i += 128) {
      const at::Tensor raw = calib.images.slice(0, i, std::min(i + 128, calib.size()));
      xs.push_back(hybrid.run({{h.inputs[0], data::preprocess_batch(raw, p)}}, {b.input}).at(b.input));
      const std::string& tin = teacher.graph().inputs.at(0);
      ts.push_back(teacher.run({{tin, data::preprocess_batch(raw, tp)}}, {b.server_tensor}).at(b.server_tensor));
    }
    // Pixels as rows: (N, C, H, W) -> (N*H*W, C).
    const at::Tensor x = at::cat(xs).permute({0, 2, 3, 1}).reshape({-1, at::cat(xs).size(1)});
    const at::Tensor t = at::cat(ts).permute({0, 2, 3, 1}).reshape({-1, at::cat(ts).size(1)});
    auto [w, bias] = fit_linear(x, t);
    h.initializers.at(conv.inputs[1]).copy_(w.t().reshape(h.initializers.at(conv.inputs[1]).sizes()));
    if (conv.inputs.size() > 2) h.initializers.at(conv.inputs[2]).copy_(bias);
  }
  return static_cast<int>(branches.size());
}

}  // namespace graft::train
