// graft::ir — the one model graph every stage of graft works on.
//
// A Graph holds what an ONNX ModelProto holds (nodes, named values with dtype and shape,
// initializers as at::Tensor, graph inputs and outputs, opset imports, attributes, doc strings
// and metadata_props), in a form the graph algorithms can walk: after reindex(), nodes are in
// topological order and every value knows its producer and consumers.
//
// Edit the public containers freely, then call reindex() before walking the graph again.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graft/ir/attributes.h"

namespace graft::ir {

// Element types use ONNX's TensorProto.DataType codes.
using DType = int32_t;
inline constexpr DType kUndefined = 0;
inline constexpr DType kFloat = 1;
inline constexpr DType kInt64 = 7;
std::string dtype_name(DType dtype);
// The ONNX code of an ATen scalar type; throws Error for types ONNX lacks.
DType dtype_of(at::ScalarType type);

// One dimension: a known size, or a symbol ("N", "batch") or nothing when unknown.
struct Dim {
  int64_t value = -1;
  std::string param;

  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT: a size converts implicitly, as in {1, 3, 224, 224}
  explicit Dim(std::string symbol) : param(std::move(symbol)) {}
  bool known() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && param == o.param; }
  bool operator!=(const Dim& o) const { return !(*this == o); }
};
using Shape = std::vector<Dim>;

// "(1, 256, 29, 29)"; unknown dimensions print as "?", symbols by name.
std::string shape_str(const std::optional<Shape>& shape);
// Sizes of a fully known shape; nullopt when any dimension is not known.
std::optional<std::vector<int64_t>> known_sizes(const std::optional<Shape>& shape);

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                // "" is the default ONNX domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  Attributes attributes;
  std::string doc_string;

  // "node 'conv1' (Conv)", for error messages.
  std::string describe() const;
};

struct Value {
  std::string name;
  DType dtype = kUndefined;
  std::optional<Shape> shape;   // nullopt: rank unknown
  int producer = -1;            // index into Graph::nodes; -1 for inputs and initializers
  std::vector<int> consumers;   // node indices, ascending, one entry per consuming node
  bool is_graph_input = false;
  bool is_initializer = false;
  bool is_graph_output = false;
};

struct OpsetImport {
  std::string domain;
  int64_t version = 0;
  bool operator==(const OpsetImport& o) const { return domain == o.domain && version == o.version; }
};

class Graph {
 public:
  // Model-level fields.
  int64_t ir_version = 8;
  std::vector<OpsetImport> opset_imports{{"", 13}};
  std::string producer_name = "graft";
  std::string producer_version;
  std::string model_domain;
  int64_t model_version = 0;
  std::string model_doc_string;
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props, in file order

  // Graph-level fields.
  std::string name = "graph";
  std::string doc_string;
  std::vector<std::string> inputs;   // graph inputs that are not initializers, in order
  std::vector<std::string> outputs;
  std::vector<Node> nodes;           // topological order once reindex() has run
  std::map<std::string, at::Tensor> initializers;
  // Declared or inferred dtype/shape of values, by name (graph inputs, outputs, intermediates).
  // Producer and consumer links live in values() and are rebuilt by reindex().
  std::unordered_map<std::string, Value> values;

  // Sorts nodes topologically (stable: an already sorted graph keeps its order), checks that
  // every input is defined exactly once and every graph output is computed, and rebuilds the
  // producer/consumer links in `values`. Throws Error naming the node at fault; a cycle is
  // reported with the nodes on it.
  void reindex();

  // The value named `name`; throws Error if the graph has none.
  const Value& value(const std::string& name) const;
  Value& value(const std::string& name);
  bool has_value(const std::string& name) const { return values.count(name) != 0; }

  // Index of the node called `name`, or -1.
  int find_node(const std::string& name) const;

  // The opset version of the default ONNX domain (0 if not imported).
  int64_t opset() const;

  // metadata_props helpers: get returns nullopt when absent; set replaces or appends.
  std::optional<std::string> get_metadata(const std::string& key) const;
  void set_metadata(const std::string& key, const std::string& value);
  void erase_metadata(const std::string& key);
};

// A graph with `g`'s model-level fields (IR version, opsets, producer version, domain, model
// version, doc strings, metadata), producer "graft", the given name, and nothing else: the start
// of a graph derived from `g` (a head, a tail, a hybrid).
Graph derived_from(const Graph& g, std::string name);

// Structural equality: same fields, same nodes and attributes, same initializer names,
// dtypes, sizes and bytes, same declared types of inputs and outputs. Used by round-trip tests.
bool equal_graphs(const Graph& a, const Graph& b, std::string* why = nullptr);

}  // namespace graft::ir
