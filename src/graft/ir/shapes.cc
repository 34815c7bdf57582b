#include "graft/ir/shapes.h"

#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <optional>
#include <deque>
#include <unordered_map>

#include "graft/core/error.h"
#include "graft/ir/proto.h"
#include "graft/ir/tensor_proto.h"

namespace graft::ir {
namespace {

// Float weights above this size are declared by type only: shape inference needs their shapes,
// not their 200 MB of values. Small and integer tensors (Reshape targets, Pad amounts, Clip
// bounds) keep their data so data propagation can use it.
constexpr int64_t kMaxEmbeddedFloats = 64;

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

InputShape parse_input_shape(const std::string& text) {
  InputShape s;
  std::string dims = text;
  const size_t eq = text.rfind('=');
  if (eq != std::string::npos) {
    s.name = text.substr(0, eq);
    dims = text.substr(eq + 1);
  }
  const std::string usage = "bad --input-shape '" + text + "': expected [NAME=]D1xD2x..., e.g. 1x3x224x224";
  if (dims.empty()) throw Error(usage);
  size_t pos = 0;
  while (pos <= dims.size()) {
    size_t x = dims.find('x', pos);
    if (x == std::string::npos) x = dims.size();
    const std::string part = dims.substr(pos, x - pos);
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos ||
        part.size() > 12) {
      throw Error(usage);
    }
    const int64_t d = std::stoll(part);
    if (d <= 0) throw Error(usage + " (dimensions must be positive)");
    s.dims.push_back(d);
    pos = x + 1;
  }
  return s;
}

void set_input_shapes(Graph& graph, const std::vector<InputShape>& shapes) {
  for (const auto& s : shapes) {
    std::string name = s.name;
    if (name.empty()) {
      if (graph.inputs.size() != 1) {
        throw Error("the model has " + std::to_string(graph.inputs.size()) +
                    " inputs (" + join_names(graph.inputs) +
                    "); name the one to shape: --input-shape NAME=1x3x224x224");
      }
      name = graph.inputs[0];
    }
    if (std::find(graph.inputs.begin(), graph.inputs.end(), name) == graph.inputs.end()) {
      throw Error("--input-shape names '" + name + "', which is not an input of the model (inputs: " +
                  join_names(graph.inputs) + ")");
    }
    Value& v = graph.value(name);
    if (v.shape && v.shape->size() != s.dims.size()) {
      throw Error("input '" + name + "' has rank " + std::to_string(v.shape->size()) + " " +
                  shape_str(v.shape) + " but --input-shape gives " +
                  std::to_string(s.dims.size()) + " dimensions");
    }
    v.shape = Shape(s.dims.begin(), s.dims.end());
  }
}

void fix_batch(Graph& graph, int64_t batch) {
  for (const auto& in : graph.inputs) {
    Value& v = graph.value(in);
    if (v.shape && !v.shape->empty() && !(*v.shape)[0].known()) (*v.shape)[0] = Dim(batch);
  }
}

namespace {

constexpr int64_t kMaxEmbeddedInts = 1 << 16;

bool is_conv_or_pool(const std::string& op) {
  return op == "Conv" || op == "ConvTranspose" || op == "ConvInteger" || op == "QLinearConv" ||
         op == "MaxPool" || op == "AveragePool" || op == "LpPool";
}

// ONNX 1.12's conv/pool inference indexes its attribute arrays by the kernel's rank and divides
// by the strides: check them here, so a malformed model is an error naming the node rather than
// a crash inside libonnx. Conv-family nodes without kernel_shape get it from their weights.
using TypeMap = std::unordered_map<std::string, onnx::TypeProto*>;

// Sizes of a value as currently inferred; nullopt when not fully known.
std::optional<std::vector<int64_t>> inferred_sizes(const TypeMap& types, const std::string& name) {
  auto it = types.find(name);
  if (it == types.end() || !it->second->tensor_type().has_shape()) return std::nullopt;
  std::vector<int64_t> sizes;
  for (const auto& d : it->second->tensor_type().shape().dim()) {
    if (!d.has_dim_value()) return std::nullopt;
    sizes.push_back(d.dim_value());
  }
  return sizes;
}

// A value's rank when its shape is known (its sizes may be symbolic).
std::optional<size_t> inferred_rank(const TypeMap& types, const std::string& name) {
  auto it = types.find(name);
  if (it == types.end() || !it->second->tensor_type().has_shape()) return std::nullopt;
  return static_cast<size_t>(it->second->tensor_type().shape().dim_size());
}

void guard_conv_pool(const Node& n, const TypeMap& types, onnx::NodeProto* np) {
  auto ints = [&](const char* name) { return n.attributes.get_ints(name); };
  auto fail = [&](const std::string& what) { throw Error(n.describe() + ": " + what); };
  std::vector<int64_t> kernel = ints("kernel_shape");
  const bool has_weights = n.op_type.find("Conv") != std::string::npos;
  // ONNX 1.12 indexes the input's and weights' dimensions without checking their ranks (a
  // ConvTranspose with 2-D weights for a 4-D input segfaults in convTransposeShapeInference;
  // found by fuzzing).
  const size_t w_index = n.op_type == "QLinearConv" ? 3 : 1;
  // The input's rank, 0 when unknown.
  const size_t x = n.inputs.empty() ? 0 : inferred_rank(types, n.inputs[0]).value_or(0);
  if (x > 0 && x < 3) {
    fail("input '" + n.inputs[0] + "' has rank " + std::to_string(x) +
         "; it needs a batch, a channel and at least one spatial axis");
  }
  if (has_weights && n.inputs.size() > w_index && x > 0) {
    const auto w = inferred_rank(types, n.inputs[w_index]);
    if (w && *w != x) {
      fail("weights '" + n.inputs[w_index] + "' have rank " + std::to_string(*w) + " but input '" + n.inputs[0] +
           "' has rank " + std::to_string(x) + " (a convolution's weights are (out, in / group, kernel...))");
    }
  }
  if (kernel.empty() && has_weights) {
    if (n.inputs.size() > w_index) {
      auto w = inferred_sizes(types, n.inputs[w_index]);
      if (w && w->size() >= 3) {
        kernel.assign(w->begin() + 2, w->end());
        auto* a = np->add_attribute();
        a->set_name("kernel_shape");
        a->set_type(onnx::AttributeProto::INTS);
        for (int64_t k : kernel) a->add_ints(k);
      }
    }
  }
  if (kernel.empty()) return;  // ONNX reports the missing attribute itself
  const size_t k = kernel.size();
  if (x > 0 && k != x - 2) {
    fail("kernel_shape has " + std::to_string(k) + " values but input '" + n.inputs[0] + "' has " +
         std::to_string(x - 2) + " spatial axes");
  }
  for (int64_t v : kernel) {
    if (v <= 0) fail("kernel_shape has a non-positive size");
  }
  for (const char* name : {"strides", "dilations"}) {
    const auto v = ints(name);
    if (v.empty()) continue;
    if (v.size() != k) {
      fail(std::string(name) + " has " + std::to_string(v.size()) + " values, expected " +
           std::to_string(k) + " (one per spatial axis)");
    }
    for (int64_t x : v) {
      if (x <= 0) fail(std::string(name) + " has a non-positive value");
    }
  }
  for (const char* name : {"pads", "output_padding"}) {
    const auto v = ints(name);
    const size_t want = std::string(name) == "pads" ? 2 * k : k;
    if (!v.empty() && v.size() != want) {
      fail(std::string(name) + " has " + std::to_string(v.size()) + " values, expected " +
           std::to_string(want));
    }
    for (int64_t x : v) {
      if (x < 0) fail(std::string(name) + " has a negative value");
    }
  }
  const int64_t group = n.attributes.get_int("group", 1);
  if (group <= 0) fail("group must be positive");
  if (n.op_type == "Conv" && n.inputs.size() > 1) {  // ONNX 1.12 does not check channels
    auto x = inferred_sizes(types, n.inputs[0]);
    auto w = inferred_sizes(types, n.inputs[1]);
    if (x && w && x->size() >= 2 && w->size() >= 2 && (*x)[1] != (*w)[1] * group) {
      fail("input '" + n.inputs[0] + "' has " + std::to_string((*x)[1]) +
           " channels but the weights '" + n.inputs[1] + "' expect " +
           std::to_string((*w)[1] * group) + " (" + std::to_string((*w)[1]) + " per group, " +
           std::to_string(group) + " groups)");
    }
  }
}

void read_type(const onnx::TypeProto& t, Value* v) {
  if (!t.has_tensor_type()) return;
  const auto& tt = t.tensor_type();
  if (tt.elem_type() != 0) v->dtype = tt.elem_type();
  if (!tt.has_shape()) return;
  Shape shape;
  for (const auto& d : tt.shape().dim()) {
    shape.push_back(d.has_dim_value() ? Dim(d.dim_value()) : Dim(d.dim_param()));
  }
  v->shape = std::move(shape);
}

}  // namespace

void infer_shapes(Graph& graph) {
  // Types of every known value, fed to ONNX's per-op inference functions node by node.
  std::unordered_map<std::string, onnx::TypeProto> types;
  std::unordered_map<std::string, onnx::TypeProto*> type_ptrs;
  std::unordered_map<std::string, const onnx::TensorProto*> data;
  std::unordered_map<std::string, onnx::TensorShapeProto> propagated;
  std::deque<onnx::TensorProto> data_store;
  std::deque<onnx::NodeProto> node_store;

  auto set_type = [&](const std::string& name, const onnx::TypeProto& t) {
    onnx::TypeProto& slot = types[name];
    slot = t;
    type_ptrs[name] = &slot;
  };
  for (const auto& in : graph.inputs) {
    onnx::TypeProto t;
    fill_type(graph.value(in), &t);
    set_type(in, t);
  }
  for (const auto& [name, tensor] : graph.initializers) {
    onnx::TypeProto t;
    Value v;
    v.dtype = dtype_of(tensor.scalar_type());
    v.shape = Shape(tensor.sizes().begin(), tensor.sizes().end());
    fill_type(v, &t);
    set_type(name, t);
    // Small constants keep their values, for ops that read them (Reshape targets, Pad amounts).
    const int64_t limit = tensor.is_floating_point() ? kMaxEmbeddedFloats : kMaxEmbeddedInts;
    if (!tensor.is_meta() && tensor.numel() <= limit) {
      data_store.emplace_back();
      tensor_to_proto(tensor, name, &data_store.back());
      data[name] = &data_store.back();
    }
  }

  std::unordered_map<std::string, int> opsets;
  for (const auto& o : graph.opset_imports) {
    opsets[o.domain == "ai.onnx" ? "" : o.domain] = static_cast<int>(o.version);
  }
  const auto* registry = onnx::OpSchemaRegistry::Instance();
  for (const Node& n : graph.nodes) {
    auto opset = opsets.find(n.domain);
    const onnx::OpSchema* schema =
        opset == opsets.end() ? nullptr : registry->GetSchema(n.op_type, opset->second, n.domain);
    bool has_subgraph = false;
    for (const auto& a : n.attributes.list) has_subgraph |= a.kind == Attribute::Kind::kOpaque;
    // ONNX 1.12's inference for the signal ops reads dimensions its checks never ensured (STFT of a
    // 1-D signal segfaulted; found by fuzzing). No CNN uses them, and graft does not run them:
    // their outputs stay as declared.
    const bool untrusted = n.domain.empty() && (n.op_type == "STFT" || n.op_type == "DFT");
    if (schema == nullptr || !schema->has_type_and_shape_inference_function() || has_subgraph || untrusted) {
      continue;  // unknown op (or control flow): its outputs stay as declared, or unknown
    }
    bool inputs_known = true;
    for (const auto& in : n.inputs) inputs_known &= in.empty() || type_ptrs.count(in) > 0;
    if (!inputs_known) continue;  // downstream of an unknown value: unknown too
    node_store.emplace_back();
    onnx::NodeProto& np = node_store.back();
    node_to_proto(n, &np);
    try {
      schema->Verify(np);
    } catch (const std::exception& e) {
      throw Error(n.describe() + ": " + e.what());
    }
    if (is_conv_or_pool(n.op_type)) guard_conv_pool(n, type_ptrs, &np);
    // ONNX 1.12's LayerNormalization inference indexes the input's dimensions by `axis` without
    // checking it against the rank (a scalar input segfaulted; found by fuzzing).
    if (n.op_type == "LayerNormalization" && !n.inputs.empty()) {
      if (const auto r = inferred_rank(type_ptrs, n.inputs[0])) {
        const int64_t rank = static_cast<int64_t>(*r), axis = n.attributes.get_int("axis", -1);
        if (rank == 0 || axis < -rank || axis >= rank) {
          throw Error(n.describe() + ": axis " + std::to_string(axis) + " is outside input '" + n.inputs[0] +
                      "' of rank " + std::to_string(rank));
        }
      }
    }

    onnx::shape_inference::InferenceContextImpl ctx(np, type_ptrs, data, {}, &propagated);
    try {
      schema->GetTypeAndShapeInferenceFunction()(ctx);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      throw Error(n.describe() + ": shapes do not fit: " + msg);
    }
    // ONNX 1.12's Resize inference reads `sizes` only from constants; graft also takes it from
    // propagated shape data (sizes = Concat(Shape(x)[:2], [H, W]) keeps the batch dynamic).
    if (n.op_type == "Resize" && n.inputs.size() > 3 && !n.inputs[3].empty() && np.output_size() == 1) {
      onnx::TypeProto* out = ctx.getOutputType(0);
      auto sizes = propagated.find(n.inputs[3]);
      bool known = out != nullptr && out->tensor_type().has_shape();
      if (known) {
        for (const auto& d : out->tensor_type().shape().dim()) known = known && d.has_dim_value();
      }
      if (out != nullptr && !known && sizes != propagated.end()) {
        *out->mutable_tensor_type()->mutable_shape() = sizes->second;
        if (out->tensor_type().elem_type() == 0) {
          out->mutable_tensor_type()->set_elem_type(types[n.inputs[0]].tensor_type().elem_type());
        }
      }
    }
    for (int i = 0; i < np.output_size(); ++i) {
      const onnx::TypeProto* t = ctx.getOutputType(static_cast<size_t>(i));
      if (np.output(i).empty() || t == nullptr || !t->has_tensor_type() ||
          t->tensor_type().elem_type() == 0) {
        continue;
      }
      set_type(np.output(i), *t);
    }
    if (n.op_type == "Constant" && n.domain.empty()) {
      for (const auto& a : np.attribute()) {
        if (a.name() == "value" && a.has_t() && np.output_size() == 1) data[np.output(0)] = &a.t();
      }
    }
    if (schema->has_data_propagation_function()) {
      onnx::shape_inference::DataPropagationContextImpl dctx(np, type_ptrs, data, propagated);
      try {
        schema->GetDataPropagationFunction()(dctx);
      } catch (const std::exception&) {
        // Data propagation is best effort: without it the shapes it would resolve stay unknown.
      }
    }
  }
  for (auto& [name, t] : types) {
    auto it = graph.values.find(name);
    if (it == graph.values.end() || it->second.is_initializer) continue;
    // A dimension inference cannot tell keeps what was known before (a declared size, or one
    // exec::complete_shapes found by running the graph).
    const std::optional<Shape> before = it->second.shape;
    read_type(t, &it->second);
    std::optional<Shape>& after = it->second.shape;
    if (before && !after) {
      after = before;
    } else if (before && after && before->size() == after->size()) {
      for (size_t i = 0; i < after->size(); ++i) {
        if (!(*after)[i].known() && (*after)[i].param.empty()) (*after)[i] = (*before)[i];
      }
    }
  }
}

}  // namespace graft::ir
