// Constant folding: a node whose inputs are all initializers (or that has none, like Constant)
// computes the same tensors on every run, so it is run once here, with graft's own kernels, and
// its outputs become initializers. Shape of a tensor whose shape is fully known folds too, which
// lets the Shape -> Gather -> Concat -> Reshape chains of exported models fold away.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"
#include "graft/ops/kernel.h"

namespace graft::exec::passes {
namespace {

constexpr int64_t kMaxFoldedElements = int64_t{1} << 24;  // larger results stay computed

// Shape's output for a fully known input shape (with opset-15 start/end), else undefined.
at::Tensor static_shape(const ir::Graph& g, const ir::Node& n) {
  const auto sizes = ir::known_sizes(g.value(n.inputs[0]).shape);
  if (!sizes) return {};
  const int64_t rank = static_cast<int64_t>(sizes->size());
  auto clampi = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = clampi(n.attributes.get_int("start", 0));
  const int64_t end = clampi(n.attributes.get_int("end", rank));
  std::vector<int64_t> out(sizes->begin() + start, sizes->begin() + std::max(start, end));
  return at::tensor(out, at::kLong);
}

}  // namespace

int fold_constants(ir::Graph& g, const std::set<std::string>& protect) {
  const auto& registry = ops::Registry::instance();
  std::map<std::string, int64_t> opsets;
  for (const auto& o : g.opset_imports) opsets[o.domain == "ai.onnx" ? "" : o.domain] = o.version;
  c10::InferenceMode guard;
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node n = g.nodes[i];
    bool any_protected = false;
    for (const auto& out : n.outputs) any_protected = any_protected || protect.count(out) || (!out.empty() && g.value(out).is_graph_output);
    if (any_protected || n.outputs.empty()) continue;
    std::vector<at::Tensor> results;
    if (n.domain.empty() && n.op_type == "Shape" && !n.inputs.empty()) {
      at::Tensor s = static_shape(g, n);
      if (!s.defined()) continue;
      results.push_back(s);
    } else {
      bool all_constant = true;
      for (const auto& in : n.inputs) all_constant = all_constant && (in.empty() || constant(g, in));
      const ops::KernelFactory* factory = registry.find(n.domain, n.op_type);
      // Random ops are not in graft's registry; Dropout is the identity in inference.
      if (!all_constant || factory == nullptr) continue;
      ops::NodeContext ctx{n, opsets[n.domain], {}, {}};
      std::vector<at::Tensor> args;
      for (const auto& in : n.inputs) {
        const at::Tensor* c = in.empty() ? nullptr : constant(g, in);
        args.push_back(c ? *c : at::Tensor());
        ctx.constants.push_back(args.back());
        ctx.input_shapes.push_back(in.empty() ? std::nullopt : g.value(in).shape);
      }
      try {
        results = (*factory)(ctx)(args, ops::RunContext{});
      } catch (const std::exception&) {
        continue;  // leave it to run (and report its error) at run time
      }
    }
    bool ok = results.size() >= n.outputs.size();
    for (size_t k = 0; ok && k < n.outputs.size(); ++k) {
      ok = n.outputs[k].empty() || (results[k].defined() && results[k].numel() <= kMaxFoldedElements);
    }
    if (!ok) continue;
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      ir::Value& v = g.value(n.outputs[k]);
      g.initializers[n.outputs[k]] = results[k].contiguous();
      v.is_initializer = true;
      v.producer = -1;
      v.dtype = ir::dtype_of(results[k].scalar_type());
      v.shape = ir::Shape(results[k].sizes().begin(), results[k].sizes().end());
    }
    dead[i] = true;
    ++folded;
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace graft::exec::passes
