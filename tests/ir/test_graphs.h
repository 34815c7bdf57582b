// Small graphs built in code for the ir tests.
#pragma once

#include <ATen/ops/arange.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::ir::testing {

inline Node make_node(std::string name, std::string op, std::vector<std::string> inputs,
                      std::vector<std::string> outputs) {
  Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

inline void declare(Graph& g, const std::string& name, Shape shape, DType dtype = kFloat) {
  Value& v = g.values[name];
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
}

// x(N,3,8,8) -> conv(4, 3x3, pad 1) -> bn -> relu -> gap -> flatten -> gemm(10) -> y(N,10)
inline Graph small_convnet() {
  Graph g;
  g.name = "small";
  g.opset_imports = {{"", 13}};
  g.inputs = {"x"};
  declare(g, "x", {Dim(std::string("N")), 3, 8, 8});
  g.initializers["conv/w"] = at::arange(4 * 3 * 3 * 3, at::kFloat).reshape({4, 3, 3, 3}).div(100.0);
  g.initializers["conv/b"] = at::ones({4}, at::kFloat);
  g.initializers["bn/scale"] = at::ones({4}, at::kFloat);
  g.initializers["bn/bias"] = at::zeros({4}, at::kFloat);
  g.initializers["bn/mean"] = at::zeros({4}, at::kFloat);
  g.initializers["bn/var"] = at::ones({4}, at::kFloat);
  g.initializers["fc/w"] = at::ones({4, 10}, at::kFloat);
  g.initializers["fc/b"] = at::zeros({10}, at::kFloat);
  Node conv = make_node("conv", "Conv", {"x", "conv/w", "conv/b"}, {"c"});
  conv.attributes.set(Attribute::of_ints("kernel_shape", {3, 3}));
  conv.attributes.set(Attribute::of_ints("pads", {1, 1, 1, 1}));
  g.nodes.push_back(conv);
  Node bn = make_node("bn", "BatchNormalization",
                      {"c", "bn/scale", "bn/bias", "bn/mean", "bn/var"}, {"b"});
  bn.attributes.set(Attribute::of_float("epsilon", 1e-3f));
  g.nodes.push_back(bn);
  g.nodes.push_back(make_node("relu", "Relu", {"b"}, {"r"}));
  g.nodes.push_back(make_node("gap", "GlobalAveragePool", {"r"}, {"p"}));
  g.nodes.push_back(make_node("flat", "Flatten", {"p"}, {"f"}));
  g.nodes.push_back(make_node("fc", "Gemm", {"f", "fc/w", "fc/b"}, {"y"}));
  g.outputs = {"y"};
  declare(g, "y", {Dim(std::string("N")), 10});
  g.metadata = {{"graft.role", "model"}, {"author", "test"}};
  g.doc_string = "a small test network";
  g.reindex();
  return g;
}

}  // namespace graft::ir::testing
