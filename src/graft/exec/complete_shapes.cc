// Shapes static inference cannot reach, completed by running the graph on zeros.
#include <ATen/ops/zeros.h>

#include <optional>

#include "graft/core/error.h"
#include "graft/exec/session.h"

namespace graft::exec {
namespace {

bool incomplete(const ir::Value& v) {
  if (!v.shape) return true;
  for (const ir::Dim& d : *v.shape) {
    if (!d.known() && d.param.empty()) return true;
  }
  return false;
}

// Node outputs whose shape is not fully known.
std::vector<std::string> incomplete_values(const ir::Graph& g) {
  std::vector<std::string> out;
  for (const ir::Node& n : g.nodes) {
    for (const auto& o : n.outputs) {
      if (!o.empty() && incomplete(g.value(o))) out.push_back(o);
    }
  }
  return out;
}

}  // namespace

bool has_incomplete_shapes(const ir::Graph& g) { return !incomplete_values(g).empty(); }

int complete_shapes(ir::Graph& g) {
  const std::vector<std::string> missing = incomplete_values(g);
  if (missing.empty()) return 0;
  for (const auto& [name, t] : g.initializers) {
    if (t.is_meta()) return 0;  // loaded without weights: nothing to run
  }
  std::string batch;  // the batch symbol, when the inputs' first dimension is one
  for (const auto& in : g.inputs) {
    const ir::Value& v = g.value(in);
    if (!v.shape || v.shape->empty() || (v.dtype != ir::kFloat && v.dtype != ir::kInt64)) return 0;
    for (size_t i = 1; i < v.shape->size(); ++i) {
      if (!(*v.shape)[i].known()) return 0;
    }
    const ir::Dim& first = (*v.shape)[0];
    if (!first.known()) {
      if (first.param.empty() || (!batch.empty() && batch != first.param)) return 0;
      batch = first.param;
    }
  }
  std::optional<Session> session;
  auto run_at = [&](int64_t b) {
    TensorMap inputs;
    for (const auto& in : g.inputs) {
      const ir::Value& v = g.value(in);
      std::vector<int64_t> sizes;
      for (const ir::Dim& d : *v.shape) sizes.push_back(d.known() ? d.value : b);
      inputs[in] = at::zeros(sizes, v.dtype == ir::kInt64 ? at::kLong : at::kFloat);
    }
    return session->run(inputs, missing);
  };
  TensorMap one, two;
  try {
    session.emplace(g, SessionOptions{}, "");
    one = run_at(1);
    two = batch.empty() ? one : run_at(2);
  } catch (const std::exception&) {
    return 0;  // best effort: a graph graft cannot run keeps the shapes inference gave it
  }
  int completed = 0;
  for (const auto& name : missing) {
    const at::Tensor& a = one.at(name);
    const at::Tensor& b = two.at(name);
    if (a.dim() != b.dim()) continue;
    ir::Shape shape;
    bool known = true;
    for (int64_t i = 0; i < a.dim(); ++i) {
      if (a.size(i) == b.size(i)) {
        shape.push_back(a.size(i));
      } else if (a.size(i) == 1 && b.size(i) == 2) {
        shape.push_back(ir::Dim(batch));
      } else {
        known = false;  // depends on the batch in another way: leave it to the runtime
        shape.emplace_back();
      }
    }
    ir::Value& v = g.value(name);
    v.shape = shape;
    if (v.dtype == ir::kUndefined) v.dtype = ir::dtype_of(a.scalar_type());
    completed += known;
  }
  return completed;
}

}  // namespace graft::exec
