#include "graft/ir/graph.h"

#include <algorithm>
#include <cstring>
#include <queue>
#include <sstream>
#include <unordered_set>

#include "graft/core/error.h"

namespace graft::ir {

std::string dtype_name(DType dtype) {
  static const char* const kNames[] = {"undefined", "float32", "uint8",   "int8",     "uint16",
                                       "int16",     "int32",   "int64",   "string",   "bool",
                                       "float16",   "float64", "uint32",  "uint64",   "complex64",
                                       "complex128", "bfloat16"};
  if (dtype >= 0 && dtype < static_cast<DType>(sizeof(kNames) / sizeof(kNames[0]))) {
    return kNames[dtype];
  }
  return "dtype(" + std::to_string(dtype) + ")";
}

DType dtype_of(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return 1;
    case at::kByte: return 2;
    case at::kChar: return 3;
    case at::kShort: return 5;
    case at::kInt: return 6;
    case at::kLong: return 7;
    case at::kBool: return 9;
    case at::kHalf: return 10;
    case at::kDouble: return 11;
    case at::kBFloat16: return 16;
    default:
      throw Error(std::string("tensor type ") + c10::toString(type) + " has no ONNX equivalent",
                  ErrorKind::kInternal);
  }
}

std::string shape_str(const std::optional<Shape>& shape) {
  if (!shape) return "?";
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape->size(); ++i) {
    if (i) out << ", ";
    const Dim& d = (*shape)[i];
    if (d.known()) {
      out << d.value;
    } else if (!d.param.empty()) {
      out << d.param;
    } else {
      out << "?";
    }
  }
  out << ")";
  return out.str();
}

std::optional<std::vector<int64_t>> known_sizes(const std::optional<Shape>& shape) {
  if (!shape) return std::nullopt;
  std::vector<int64_t> sizes;
  sizes.reserve(shape->size());
  for (const Dim& d : *shape) {
    if (!d.known()) return std::nullopt;
    sizes.push_back(d.value);
  }
  return sizes;
}

std::string Node::describe() const { return "node '" + name + "' (" + op_type + ")"; }

void Graph::reindex() {
  // Every name defined in the graph, and who defines it (-1: input or initializer).
  std::unordered_map<std::string, int> definer;
  auto define = [&](const std::string& n, int by, const char* what) {
    if (n.empty()) return;
    auto [it, inserted] = definer.emplace(n, by);
    if (!inserted) {
      std::string first = it->second >= 0 ? nodes[it->second].describe() : "a graph input";
      throw Error("tensor '" + n + "' is defined twice: by " + first + " and by " + what +
                  "; ONNX requires each tensor name to be assigned once (SSA)");
    }
  };
  for (const auto& n : inputs) define(n, -1, "a graph input");
  for (const auto& [n, t] : initializers) {
    if (definer.count(n) && definer[n] == -1 &&
        std::find(inputs.begin(), inputs.end(), n) != inputs.end()) {
      throw Error("tensor '" + n + "' is both a graph input and an initializer; graft keeps "
                  "initializers out of the input list");
    }
    define(n, -1, "an initializer");
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].op_type.empty()) {
      throw Error("node #" + std::to_string(i) + " ('" + nodes[i].name + "') has no op_type");
    }
    for (const auto& o : nodes[i].outputs) {
      define(o, static_cast<int>(i), nodes[i].describe().c_str());
    }
  }

  // Kahn's algorithm, always taking the ready node that came first in the original order, so a
  // sorted graph stays as it is and an unsorted one changes as little as possible.
  const size_t n = nodes.size();
  std::vector<std::vector<int>> users(n);
  std::vector<int> pending(n, 0);
  for (size_t i = 0; i < n; ++i) {
    std::unordered_set<int> deps;
    for (const auto& in : nodes[i].inputs) {
      if (in.empty()) continue;
      auto it = definer.find(in);
      if (it == definer.end()) {
        throw Error(nodes[i].describe() + " reads '" + in +
                    "', which is not a graph input, an initializer or any node's output");
      }
      if (it->second >= 0 && deps.insert(it->second).second) {
        users[it->second].push_back(static_cast<int>(i));
        ++pending[i];
      }
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push(static_cast<int>(i));
  }
  std::vector<int> order;
  order.reserve(n);
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int u : users[i]) {
      if (--pending[u] == 0) ready.push(u);
    }
  }
  if (order.size() != n) {
    std::string on_cycle;
    int shown = 0;
    for (size_t i = 0; i < n && shown < 5; ++i) {
      if (pending[i] > 0) {
        on_cycle += (shown++ ? ", " : "") + nodes[i].describe();
      }
    }
    throw Error("the graph has a cycle; nodes on or behind it: " + on_cycle);
  }
  bool sorted = true;
  for (size_t i = 0; i < n; ++i) sorted = sorted && order[i] == static_cast<int>(i);
  if (!sorted) {
    std::vector<Node> reordered;
    reordered.reserve(n);
    for (int i : order) reordered.push_back(std::move(nodes[i]));
    nodes = std::move(reordered);
  }

  for (const auto& o : outputs) {
    if (!definer.count(o)) {
      throw Error("graph output '" + o + "' is not computed by any node");
    }
  }

  // Rebuild value links; keep declared dtype/shape of names that still exist.
  for (auto it = values.begin(); it != values.end();) {
    it = definer.count(it->first) ? std::next(it) : values.erase(it);
  }
  for (auto& [name, v] : values) {
    v.producer = -1;
    v.consumers.clear();
    v.is_graph_input = v.is_initializer = v.is_graph_output = false;
  }
  auto touch = [&](const std::string& name) -> Value& {
    Value& v = values[name];
    v.name = name;
    return v;
  };
  for (const auto& in : inputs) touch(in).is_graph_input = true;
  for (const auto& [name, t] : initializers) {
    Value& v = touch(name);
    v.is_initializer = true;
    v.dtype = dtype_of(t.scalar_type());
    v.shape = Shape(t.sizes().begin(), t.sizes().end());
  }
  for (size_t i = 0; i < n; ++i) {
    for (const auto& o : nodes[i].outputs) {
      if (!o.empty()) touch(o).producer = static_cast<int>(i);
    }
    for (const auto& in : nodes[i].inputs) {
      if (in.empty()) continue;
      auto& c = touch(in).consumers;
      if (c.empty() || c.back() != static_cast<int>(i)) c.push_back(static_cast<int>(i));
    }
  }
  for (const auto& o : outputs) touch(o).is_graph_output = true;
}

const Value& Graph::value(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) throw Error("no tensor named '" + name + "' in the graph");
  return it->second;
}

Value& Graph::value(const std::string& name) {
  auto it = values.find(name);
  if (it == values.end()) throw Error("no tensor named '" + name + "' in the graph");
  return it->second;
}

int Graph::find_node(const std::string& node_name) const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].name == node_name) return static_cast<int>(i);
  }
  return -1;
}

int64_t Graph::opset() const {
  for (const auto& o : opset_imports) {
    if (o.domain.empty() || o.domain == "ai.onnx") return o.version;
  }
  return 0;
}

std::optional<std::string> Graph::get_metadata(const std::string& key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void Graph::set_metadata(const std::string& key, const std::string& value) {
  for (auto& [k, v] : metadata) {
    if (k == key) {
      v = value;
      return;
    }
  }
  metadata.emplace_back(key, value);
}

void Graph::erase_metadata(const std::string& key) {
  metadata.erase(std::remove_if(metadata.begin(), metadata.end(),
                                [&](const auto& kv) { return kv.first == key; }),
                 metadata.end());
}

Graph derived_from(const Graph& g, std::string name) {
  Graph d;
  d.ir_version = g.ir_version;
  d.opset_imports = g.opset_imports;
  d.producer_name = "graft";
  d.producer_version = g.producer_version;
  d.model_domain = g.model_domain;
  d.model_version = g.model_version;
  d.model_doc_string = g.model_doc_string;
  d.metadata = g.metadata;
  d.name = std::move(name);
  d.doc_string = g.doc_string;
  return d;
}

namespace {

bool same_tensor(const at::Tensor& a, const at::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.is_meta() || b.is_meta()) return a.is_meta() && b.is_meta();
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

bool same_attribute(const Attribute& a, const Attribute& b) {
  return a.name == b.name && a.kind == b.kind && a.doc_string == b.doc_string &&
         (a.kind != Attribute::Kind::kFloat || std::memcmp(&a.f, &b.f, sizeof(float)) == 0) &&
         a.i == b.i && a.s == b.s && a.floats == b.floats && a.ints == b.ints &&
         a.strings == b.strings && a.opaque == b.opaque && same_tensor(a.t, b.t);
}

}  // namespace

bool equal_graphs(const Graph& a, const Graph& b, std::string* why) {
  auto differ = [&](const std::string& what) {
    if (why) *why = what;
    return false;
  };
  if (a.ir_version != b.ir_version) return differ("ir_version");
  if (a.opset_imports != b.opset_imports) return differ("opset_imports");
  if (a.producer_name != b.producer_name || a.producer_version != b.producer_version) {
    return differ("producer");
  }
  if (a.model_domain != b.model_domain || a.model_version != b.model_version) {
    return differ("model domain/version");
  }
  if (a.model_doc_string != b.model_doc_string || a.doc_string != b.doc_string) {
    return differ("doc_string");
  }
  if (a.metadata != b.metadata) return differ("metadata_props");
  if (a.name != b.name) return differ("graph name");
  if (a.inputs != b.inputs) return differ("inputs");
  if (a.outputs != b.outputs) return differ("outputs");
  if (a.nodes.size() != b.nodes.size()) return differ("node count");
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node& x = a.nodes[i];
    const Node& y = b.nodes[i];
    if (x.name != y.name || x.op_type != y.op_type || x.domain != y.domain ||
        x.inputs != y.inputs || x.outputs != y.outputs || x.doc_string != y.doc_string ||
        x.attributes.list.size() != y.attributes.list.size()) {
      return differ("node #" + std::to_string(i) + " " + x.describe());
    }
    for (size_t k = 0; k < x.attributes.list.size(); ++k) {
      if (!same_attribute(x.attributes.list[k], y.attributes.list[k])) {
        return differ(x.describe() + " attribute '" + x.attributes.list[k].name + "'");
      }
    }
  }
  if (a.initializers.size() != b.initializers.size()) return differ("initializer count");
  for (const auto& [name, t] : a.initializers) {
    auto it = b.initializers.find(name);
    if (it == b.initializers.end()) return differ("initializer '" + name + "' missing");
    if (!same_tensor(t, it->second)) return differ("initializer '" + name + "'");
  }
  for (const auto& names : {a.inputs, a.outputs}) {
    for (const auto& n : names) {
      const Value* va = a.values.count(n) ? &a.values.at(n) : nullptr;
      const Value* vb = b.values.count(n) ? &b.values.at(n) : nullptr;
      if (!va || !vb || va->dtype != vb->dtype || va->shape != vb->shape) {
        return differ("declared type of '" + n + "'");
      }
    }
  }
  return true;
}

}  // namespace graft::ir
