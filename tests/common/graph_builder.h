// Test helper: small ONNX graphs built by hand, shapes inferred.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "graft/ir/graph.h"
#include "graft/ir/shapes.h"

namespace graft::testing {

// Values get dtype float unless given; node names are the op type and the node's index.
struct Builder {
  ir::Graph g;
  explicit Builder(int64_t opset = 13) { g.opset_imports = {{"", opset}}; }
  void input(const std::string& name, ir::Shape shape) {
    g.inputs.push_back(name);
    g.values[name].dtype = ir::kFloat;
    g.values[name].shape = std::move(shape);
  }
  std::string init(const std::string& name, const at::Tensor& t) {
    g.initializers[name] = t;
    return name;
  }
  ir::Node& node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
    ir::Node n;
    n.name = op + std::to_string(g.nodes.size());
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    g.nodes.push_back(std::move(n));
    return g.nodes.back();
  }
  ir::Graph done(std::vector<std::string> outputs) {
    g.outputs = std::move(outputs);
    for (const auto& [name, t] : g.initializers) {
      g.values[name].dtype = ir::dtype_of(t.scalar_type());
      g.values[name].shape = ir::Shape(t.sizes().begin(), t.sizes().end());
    }
    g.reindex();
    ir::infer_shapes(g);
    return g;
  }
};

}  // namespace graft::testing
