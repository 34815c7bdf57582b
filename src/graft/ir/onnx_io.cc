#include "graft/ir/onnx_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/checker.h>
#include <onnx/version_converter/convert.h>

#include <climits>
#include <unordered_set>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/ir/proto.h"
#include "graft/ir/tensor_proto.h"

namespace graft::ir {
namespace {

Attribute attribute_from_proto(const onnx::AttributeProto& p, const std::string& base_dir) {
  Attribute a;
  a.name = p.name();
  a.doc_string = p.doc_string();
  using A = onnx::AttributeProto;
  A::AttributeType type = p.type();
  if (!p.ref_attr_name().empty()) type = A::GRAPH;  // function-body reference: keep opaque
  if (type == A::UNDEFINED) {  // old exporters leave type unset; infer it from the payload
    if (p.has_f()) type = A::FLOAT;
    else if (p.has_i()) type = A::INT;
    else if (p.has_s()) type = A::STRING;
    else if (p.has_t()) type = A::TENSOR;
    else if (p.floats_size()) type = A::FLOATS;
    else if (p.ints_size()) type = A::INTS;
    else if (p.strings_size()) type = A::STRINGS;
    else type = A::GRAPH;
  }
  switch (type) {
    case A::FLOAT: a.kind = Attribute::Kind::kFloat; a.f = p.f(); break;
    case A::INT: a.kind = Attribute::Kind::kInt; a.i = p.i(); break;
    case A::STRING: a.kind = Attribute::Kind::kString; a.s = p.s(); break;
    case A::TENSOR:
      a.kind = Attribute::Kind::kTensor;
      a.t = tensor_from_proto(p.t(), base_dir);
      break;
    case A::FLOATS:
      a.kind = Attribute::Kind::kFloats;
      a.floats.assign(p.floats().begin(), p.floats().end());
      break;
    case A::INTS:
      a.kind = Attribute::Kind::kInts;
      a.ints.assign(p.ints().begin(), p.ints().end());
      break;
    case A::STRINGS:
      a.kind = Attribute::Kind::kStrings;
      a.strings.assign(p.strings().begin(), p.strings().end());
      break;
    default:
      a.kind = Attribute::Kind::kOpaque;
      a.opaque = p.SerializeAsString();
      break;
  }
  return a;
}

void attribute_to_proto(const Attribute& a, onnx::AttributeProto* p) {
  using A = onnx::AttributeProto;
  if (a.kind == Attribute::Kind::kOpaque) {
    if (!p->ParseFromString(a.opaque)) {
      throw Error("attribute '" + a.name + "' holds unparsable bytes", ErrorKind::kInternal);
    }
    return;
  }
  p->set_name(a.name);
  if (!a.doc_string.empty()) p->set_doc_string(a.doc_string);
  switch (a.kind) {
    case Attribute::Kind::kFloat: p->set_type(A::FLOAT); p->set_f(a.f); break;
    case Attribute::Kind::kInt: p->set_type(A::INT); p->set_i(a.i); break;
    case Attribute::Kind::kString: p->set_type(A::STRING); p->set_s(a.s); break;
    case Attribute::Kind::kTensor:
      p->set_type(A::TENSOR);
      tensor_to_proto(a.t, "", p->mutable_t());
      break;
    case Attribute::Kind::kFloats:
      p->set_type(A::FLOATS);
      for (float f : a.floats) p->add_floats(f);
      break;
    case Attribute::Kind::kInts:
      p->set_type(A::INTS);
      for (int64_t i : a.ints) p->add_ints(i);
      break;
    case Attribute::Kind::kStrings:
      p->set_type(A::STRINGS);
      for (const auto& s : a.strings) p->add_strings(s);
      break;
    case Attribute::Kind::kOpaque: break;
  }
}

void read_type(const onnx::ValueInfoProto& vi, Value* v) {
  v->name = vi.name();
  if (!vi.type().has_tensor_type()) return;
  const auto& tt = vi.type().tensor_type();
  v->dtype = tt.elem_type();
  if (!tt.has_shape()) return;
  Shape shape;
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      shape.emplace_back(d.dim_value() >= 0 ? Dim(d.dim_value()) : Dim());
    } else {
      shape.emplace_back(Dim(d.dim_param()));
    }
  }
  v->shape = std::move(shape);
}

}  // namespace

void fill_type(const Value& v, onnx::TypeProto* type) {
  auto* tt = type->mutable_tensor_type();
  tt->set_elem_type(v.dtype);
  if (!v.shape) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *v.shape) {
    auto* dim = shape->add_dim();
    if (d.known()) {
      dim->set_dim_value(d.value);
    } else if (!d.param.empty()) {
      dim->set_dim_param(d.param);
    }
  }
}

void node_to_proto(const Node& n, onnx::NodeProto* np) {
  np->set_name(n.name);
  np->set_op_type(n.op_type);
  if (!n.domain.empty()) np->set_domain(n.domain);
  if (!n.doc_string.empty()) np->set_doc_string(n.doc_string);
  for (const auto& in : n.inputs) np->add_input(in);
  for (const auto& out : n.outputs) np->add_output(out);
  for (const auto& a : n.attributes.list) attribute_to_proto(a, np->add_attribute());
}

Graph from_proto(const onnx::ModelProto& m, const std::string& base_dir,
                 const std::string& origin, const StrippedPayloads& payloads, bool shapes_only) {
  if (!m.has_graph() || m.ir_version() == 0) {
    throw Error(origin + ": not an ONNX model (no ir_version or no graph); expected a "
                "serialized onnx.ModelProto");
  }
  if (m.ir_version() < kMinIrVersion || m.ir_version() > kMaxIrVersion) {
    throw Error(origin + ": IR version " + std::to_string(m.ir_version()) +
                " is not supported (graft reads IR versions " + std::to_string(kMinIrVersion) +
                "–" + std::to_string(kMaxIrVersion) + ")");
  }
  Graph g;
  g.ir_version = m.ir_version();
  g.opset_imports.clear();
  for (const auto& o : m.opset_import()) {
    g.opset_imports.push_back({o.domain(), o.version()});
    if ((o.domain().empty() || o.domain() == "ai.onnx") &&
        (o.version() < kMinOpset || o.version() > kMaxOpset)) {
      throw Error(origin + ": opset " + std::to_string(o.version()) +
                  " is not supported (graft reads opsets " + std::to_string(kMinOpset) + "–" +
                  std::to_string(kMaxOpset) + "); re-export the model with an opset in that range");
    }
  }
  g.producer_name = m.producer_name();
  g.producer_version = m.producer_version();
  g.model_domain = m.domain();
  g.model_version = m.model_version();
  g.model_doc_string = m.doc_string();
  for (const auto& kv : m.metadata_props()) g.metadata.emplace_back(kv.key(), kv.value());

  const onnx::GraphProto& gp = m.graph();
  g.name = gp.name();
  g.doc_string = gp.doc_string();
  if (gp.sparse_initializer_size() > 0) {
    throw Error(origin + ": sparse initializer '" + gp.sparse_initializer(0).values().name() +
                "' is not supported; densify it before loading");
  }
  if (payloads.spans != nullptr &&
      payloads.spans->size() != static_cast<size_t>(gp.initializer_size())) {
    throw Error(origin + ": initializer payloads do not line up with the initializers",
                ErrorKind::kInternal);
  }
  for (int k = 0; k < gp.initializer_size(); ++k) {
    const onnx::TensorProto& t = gp.initializer(k);
    if (t.name().empty()) throw Error(origin + ": an initializer has no name");
    TensorSource source;
    source.shapes_only = shapes_only;
    if (payloads.spans != nullptr && (*payloads.spans)[k]) {
      source.raw_data = payloads.buffer + (*payloads.spans)[k]->offset;
      source.raw_size = (*payloads.spans)[k]->length;
    }
    at::Tensor tensor =
        with_context(origin, [&] { return tensor_from_proto(t, base_dir, source); });
    if (!g.initializers.emplace(t.name(), std::move(tensor)).second) {
      throw Error(origin + ": initializer '" + t.name() + "' appears twice");
    }
    Value& v = g.values[t.name()];
    v.name = t.name();
    v.dtype = t.data_type();
    v.shape = Shape(t.dims().begin(), t.dims().end());
  }
  for (const auto& vi : gp.input()) {
    if (g.initializers.count(vi.name())) continue;  // IR < 4 lists initializers as inputs
    g.inputs.push_back(vi.name());
    read_type(vi, &g.values[vi.name()]);
  }
  for (const auto& vi : gp.output()) {
    g.outputs.push_back(vi.name());
    read_type(vi, &g.values[vi.name()]);
  }
  for (const auto& vi : gp.value_info()) {
    if (!g.initializers.count(vi.name())) read_type(vi, &g.values[vi.name()]);
  }

  std::unordered_set<std::string> names;
  for (const auto& n : gp.node()) names.insert(n.name());
  g.nodes.reserve(gp.node_size());
  int unnamed = 0;
  for (const auto& np : gp.node()) {
    Node n;
    n.name = np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.doc_string = np.doc_string();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    if (n.name.empty()) {  // give every node a unique name: cuts and summaries refer to them
      do {
        n.name = n.op_type + "_" + std::to_string(unnamed++);
      } while (names.count(n.name));
      names.insert(n.name);
    }
    for (const auto& ap : np.attribute()) {
      n.attributes.list.push_back(with_context(origin + ": " + n.describe(),
                                               [&] { return attribute_from_proto(ap, base_dir); }));
    }
    g.nodes.push_back(std::move(n));
  }
  with_context(origin, [&] { g.reindex(); });
  return g;
}

onnx::ModelProto to_proto(const Graph& g, const ProtoOptions& options) {
  onnx::ModelProto m;
  m.set_ir_version(g.ir_version);
  for (const auto& o : g.opset_imports) {
    auto* op = m.add_opset_import();
    op->set_domain(o.domain);
    op->set_version(o.version);
  }
  m.set_producer_name(g.producer_name);
  m.set_producer_version(g.producer_version);
  m.set_domain(g.model_domain);
  m.set_model_version(g.model_version);
  m.set_doc_string(g.model_doc_string);
  for (const auto& [k, v] : g.metadata) {
    auto* kv = m.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  onnx::GraphProto* gp = m.mutable_graph();
  gp->set_name(g.name);
  gp->set_doc_string(g.doc_string);
  for (const auto& in : g.inputs) {
    auto* vi = gp->add_input();
    vi->set_name(in);
    fill_type(g.value(in), vi->mutable_type());
  }
  for (const auto& [name, t] : g.initializers) {
    if (t.is_floating_point() && t.numel() > options.max_embedded_elements) {
      auto* vi = gp->add_input();
      vi->set_name(name);
      Value v;
      v.dtype = dtype_of(t.scalar_type());
      v.shape = Shape(t.sizes().begin(), t.sizes().end());
      fill_type(v, vi->mutable_type());
    } else {
      tensor_to_proto(t, name, gp->add_initializer());
    }
  }
  for (const auto& out : g.outputs) {
    auto* vi = gp->add_output();
    vi->set_name(out);
    fill_type(g.value(out), vi->mutable_type());
  }
  for (const auto& n : g.nodes) {
    node_to_proto(n, gp->add_node());
    if (!options.with_value_info) continue;
    for (const auto& out : n.outputs) {
      auto it = g.values.find(out);
      if (out.empty() || it == g.values.end() || it->second.dtype == kUndefined ||
          it->second.is_graph_output) {
        continue;
      }
      auto* vi = gp->add_value_info();
      vi->set_name(out);
      fill_type(it->second, vi->mutable_type());
    }
  }
  return m;
}

namespace {

void parse_proto(const char* data, size_t size, const std::string& origin, onnx::ModelProto* m) {
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const uint8_t*>(data),
                                                static_cast<int>(size));
  stream.SetTotalBytesLimit(INT_MAX);
  if (!m->ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage()) {
    throw Error(origin + ": not a valid ONNX model (protobuf parse failed: the file is "
                "truncated, corrupt or not ONNX)");
  }
}

Graph parse_buffer(const char* data, size_t size, const std::string& base_dir,
                   const std::string& origin, const LoadOptions& options) {
  if (size > static_cast<size_t>(INT_MAX)) {
    throw Error(origin + ": larger than 2 GiB; store its weights as external data");
  }
  onnx::ModelProto m;
  if (auto stripped = strip_initializer_data(data, size)) {
    parse_proto(stripped->bytes.data(), stripped->bytes.size(), origin, &m);
    return from_proto(m, base_dir, origin, {data, &stripped->raw_data}, !options.weights);
  }
  parse_proto(data, size, origin, &m);
  return from_proto(m, base_dir, origin, {}, !options.weights);
}

}  // namespace

Graph parse(const std::string& bytes, const std::string& base_dir, const std::string& origin,
            const LoadOptions& options) {
  return parse_buffer(bytes.data(), bytes.size(), base_dir, origin, options);
}

Graph load(const std::string& path, const LoadOptions& options) {
  const MappedFile file(path);
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  return parse_buffer(file.data(), file.size(), dir, path, options);
}

std::string serialize(const Graph& graph) {
  onnx::ModelProto m = to_proto(graph);
  if (m.ByteSizeLong() > static_cast<size_t>(INT_MAX)) {
    throw Error("model '" + graph.name + "' is larger than 2 GiB, the ONNX protobuf limit");
  }
  return m.SerializeAsString();
}

void save(const Graph& graph, const std::string& path) {
  write_file_atomic(path, serialize(graph));
}

at::Tensor load_tensor(const std::string& path) {
  const std::string bytes = read_file(path);
  onnx::TensorProto p;
  if (!p.ParseFromString(bytes)) throw Error(path + ": not a serialized onnx.TensorProto");
  const size_t slash = path.find_last_of('/');
  return with_context(path, [&] {
    return tensor_from_proto(p, slash == std::string::npos ? "." : path.substr(0, slash));
  });
}

void save_tensor(const at::Tensor& tensor, const std::string& path) {
  onnx::TensorProto p;
  tensor_to_proto(tensor, "", &p);
  write_file_atomic(path, p.SerializeAsString());
}

Graph convert_opset(const Graph& graph, int64_t version) {
  if (graph.opset() == version) return graph;
  onnx::ModelProto converted;
  try {
    converted = onnx::version_conversion::ConvertVersion(to_proto(graph), static_cast<int>(version));
  } catch (const std::exception& e) {
    throw Error("cannot convert model '" + graph.name + "' from opset " + std::to_string(graph.opset()) +
                " to " + std::to_string(version) + ": " + e.what());
  }
  Graph g = from_proto(converted, ".", graph.name);
  return g;
}

void check(const Graph& graph) {
  onnx::ModelProto m = to_proto(graph);
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw Error(std::string("onnx checker: ") + e.what());
  }
}

}  // namespace graft::ir
