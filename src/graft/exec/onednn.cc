#include "graft/exec/onednn.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graft/core/error.h"
#include "graft/exec/passes/passes.h"

namespace graft::exec::onednn {
namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::dims to_dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

// Attributes for every primitive a program keeps: its scratchpad is the program's (user mode).
// In oneDNN's default mode a primitive's scratchpad is the creating thread's, sized when the
// primitive is made; a program made on one thread and run on another (a server's worker) would
// run some primitives (Winograd convolutions) on a scratchpad of the wrong size.
dnnl::primitive_attr scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// The implementation oneDNN chose, as DNNL_VERBOSE names it ("brgconv:avx512_core").
std::string impl_name(const dnnl::primitive& prim) {
  const char* info = nullptr;
  if (dnnl_primitive_desc_query(prim.get_primitive_desc(), dnnl_query_impl_info_str, 0, &info) !=
          dnnl_success || info == nullptr) {
    return "onednn";
  }
  return info;
}

std::vector<int64_t> to_sizes(const memory::desc& md) {
  const memory::dims d = md.dims();
  return std::vector<int64_t>(d.begin(), d.end());
}

// A value's sizes and dtype.
struct ValueInfo {
  std::vector<int64_t> sizes;
  at::ScalarType dtype = at::kFloat;
};

memory::desc plain_desc(const std::vector<int64_t>& sizes) {
  static const Tag tags[] = {Tag::a, Tag::a, Tag::ab, Tag::abc, Tag::abcd, Tag::abcde};
  if (sizes.empty() || sizes.size() > 5) {
    throw Error("oneDNN path: no plain layout for rank " + std::to_string(sizes.size()),
                ErrorKind::kInternal);
  }
  return memory::desc(to_dims(sizes), DataType::f32, tags[sizes.size()]);
}

std::vector<int64_t> ints_or(const ir::Node& n, const char* name, std::vector<int64_t> fallback) {
  return n.attributes.has(name) ? n.attributes.get_ints(name) : fallback;
}

// Begin and end pads of a 2-D window op, ONNX's auto_pad resolved for the input's sizes.
bool window_pads(const ir::Node& n, const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                 const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                 memory::dims* begin, memory::dims* end) {
  const std::string auto_pad = n.attributes.get_string("auto_pad", "NOTSET");
  const auto pads = ints_or(n, "pads", {0, 0, 0, 0});
  if (pads.size() != 4) return false;
  begin->assign(2, 0);
  end->assign(2, 0);
  for (size_t i = 0; i < 2; ++i) {
    const int64_t size = in[i + 2];
    const int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      std::tie((*begin)[i], (*end)[i]) = ops::same_pads(size, extent, strides[i], auto_pad == "SAME_UPPER");
    } else if (auto_pad == "NOTSET") {
      (*begin)[i] = pads[i];
      (*end)[i] = pads[i + 2];
    } else if (auto_pad != "VALID") {
      return false;
    }
  }
  return true;
}

struct Activation {
  dnnl::algorithm algorithm = dnnl::algorithm::undef;
  float alpha = 0.f, beta = 0.f;
  bool hard_sigmoid = false;  // linear(alpha, beta) then clip(0, 1)
};

// oneDNN's form of an ONNX activation; nullopt when it has none.
std::optional<Activation> activation_of(const std::string& op, const std::vector<float>& p) {
  Activation a;
  if (op == "Relu") {
    a.algorithm = dnnl::algorithm::eltwise_relu;
  } else if (op == "LeakyRelu" && p.size() == 1) {
    a.algorithm = dnnl::algorithm::eltwise_relu;
    a.alpha = p[0];
  } else if (op == "Clip" && p.size() == 2) {
    a.algorithm = dnnl::algorithm::eltwise_clip_v2;
    a.alpha = p[0];
    a.beta = p[1];
  } else if (op == "Sigmoid") {
    a.algorithm = dnnl::algorithm::eltwise_logistic;
  } else if (op == "Tanh") {
    a.algorithm = dnnl::algorithm::eltwise_tanh;
  } else if (op == "HardSwish") {
    a.algorithm = dnnl::algorithm::eltwise_hardswish;
  } else if (op == "HardSigmoid" && p.size() == 2) {
    a.algorithm = dnnl::algorithm::eltwise_linear;
    a.alpha = p[0];
    a.beta = p[1];
    a.hard_sigmoid = true;
  } else {
    return std::nullopt;
  }
  return a;
}

void append_activation(dnnl::post_ops& po, const Activation& a) {
  po.append_eltwise(1.f, a.algorithm, a.alpha, a.beta);
  if (a.hard_sigmoid) po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip_v2, 0.f, 1.f);
}

}  // namespace

struct WeightCache {
  std::mutex mu;
  std::map<std::string, std::vector<std::pair<memory::desc, memory>>> entries;

  // `w` reordered into `want`, made once per (initializer, layout).
  memory get(const std::string& name, const at::Tensor& w, const memory::desc& plain,
             const memory::desc& want, dnnl::stream& stream) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [md, mem] : entries[name]) {
      if (md == want) return mem;
    }
    at::Tensor src = w.contiguous();
    memory user(plain, cpu_engine(), src.data_ptr());
    memory out(want, cpu_engine());
    dnnl::reorder(user, out).execute(stream, user, out);
    stream.wait();
    entries[name].emplace_back(want, out);
    return out;
  }
};

std::shared_ptr<WeightCache> make_weight_cache() { return std::make_shared<WeightCache>(); }

struct Program::Impl {
  // A buffer of the arena, before buffers are assigned to memory.
  struct Buffer {
    size_t bytes = 0;
    int first = -1, last = -1;  // steps that write it first and read it last
    size_t physical = 0;
  };
  // What a primitive argument is bound to.
  struct Operand {
    memory mem;
    int buffer = -1;  // arena buffer, or
    int slot = -1;    // runtime tensor (graph inputs, reference outputs), or neither (weights)
  };
  struct FallbackInput {
    enum Kind { kNone, kSlot, kBuffer, kConstant } kind = kNone;
    int index = -1;
    std::vector<int64_t> sizes;  // kBuffer
    at::Tensor constant;
  };
  struct Step {
    bool primitive = true;
    std::string name, op, kernel;  // for profiles
    // Before the primitive: fill `fill_bytes` bytes at argument `fill_arg`'s buffer with
    // `fill_value` (a Pad's border; the primitive then copies the input inside it).
    int fill_arg = 0;
    size_t fill_bytes = 0;
    float fill_value = 0;
    dnnl::primitive prim;
    std::unordered_map<int, memory> args;
    std::vector<std::pair<memory, int>> slot_args;  // memory to point at a runtime tensor
    std::vector<int> reads, writes;                  // arena buffers
    // Reference node:
    size_t node = 0;
    std::vector<FallbackInput> inputs;
    std::vector<int> output_slots;                   // per node output; -1 unused
    std::vector<std::vector<int64_t>> output_sizes;
    std::vector<bool> output_contiguous;
  };
  // Where a value lives while the program runs.
  struct Value {
    bool in_arena = false;
    int buffer = -1;  // in_arena
    int slot = -1;    // otherwise
    memory::desc md;  // layout (for slots: plain, when the value is float)
    ValueInfo info;
    std::vector<std::pair<memory::desc, int>> copies;  // reordered copies: layout -> buffer
  };
  struct Output {
    std::string name;
    int buffer = -1, slot = -1;
    memory src, dst;
    std::optional<dnnl::reorder> reorder;
    std::unordered_map<int, memory> args;  // its arguments: o.src, o.dst, a scratchpad
    std::vector<int64_t> sizes;
  };

  const ir::Graph& graph;
  const std::vector<ops::Kernel>& kernels;
  WeightCache& weights;
  dnnl::stream stream{cpu_engine()};

  std::vector<Step> steps;
  std::vector<Buffer> buffers;
  std::vector<at::Tensor> arena;  // physical buffers
  std::unordered_map<std::string, Value> values;
  std::vector<std::pair<std::string, int>> input_slots;
  std::vector<int> slot_last;  // last step reading each slot
  int slots = 0;
  std::vector<Output> outputs;
  std::unordered_map<std::string, int> last_node_use;  // value -> last needed node reading it
  std::unordered_map<std::string, std::vector<size_t>> readers;  // value -> needed nodes reading it
  std::set<size_t> absorbed;  // depthwise nodes computed as another convolution's post-op
  std::set<std::string> wanted;
  std::vector<at::Tensor> keep_alive;  // constants primitives read
  ProgramStats stats;

  // While compiling, every step runs as soon as it is made, on buffers of its own (`scratch`,
  // one per arena buffer) and the first run's tensors (`building`): the program learns the
  // shapes of what the ATen kernels make by running them, and the first run's result is
  // ready when compilation ends.
  bool compiling = true;
  std::vector<at::Tensor> scratch;
  std::vector<at::Tensor> building;

  Impl(const ir::Graph& g, const std::vector<ops::Kernel>& k, WeightCache& w)
      : graph(g), kernels(k), weights(w) {}

  int new_buffer(const memory::desc& md) {
    buffers.push_back({md.get_size(), -1, -1, 0});
    scratch.push_back(at::empty({static_cast<int64_t>(std::max<size_t>(md.get_size(), 1))}, at::kByte));
    return static_cast<int>(buffers.size()) - 1;
  }

  // `mem` will live in arena buffer `buffer` (meanwhile in its scratch buffer).
  void attach(const memory& mem, int buffer) {
    pending_.emplace_back(mem, buffer);
    const_cast<memory&>(mem).set_data_handle(scratch[static_cast<size_t>(buffer)].data_ptr());
  }

  void push(Step step) {
    const int index = static_cast<int>(steps.size());
    if (step.op.empty()) {
      const ir::Node& n = graph.nodes[current_node];
      step.name = n.name.empty() ? n.outputs.front() : n.name;
      step.op = (n.domain.empty() ? "" : n.domain + ".") + n.op_type;
    }
    step.kernel = step.primitive ? impl_name(step.prim) : "aten";
    if (step.primitive) use_scratchpad(step.prim, step.args);
    for (int b : step.writes) {
      if (buffers[static_cast<size_t>(b)].first < 0) buffers[static_cast<size_t>(b)].first = index;
      buffers[static_cast<size_t>(b)].last = std::max(buffers[static_cast<size_t>(b)].last, index);
    }
    for (int b : step.reads) buffers[static_cast<size_t>(b)].last = std::max(buffers[static_cast<size_t>(b)].last, index);
    for (const auto& [mem, slot] : step.slot_args) slot_last[static_cast<size_t>(slot)] = index;
    for (const auto& in : step.inputs) {
      if (in.kind == FallbackInput::kSlot) slot_last[static_cast<size_t>(in.index)] = index;
    }
    steps.push_back(std::move(step));
    if (compiling) execute(steps.back(), building, [&](int b) { return scratch[static_cast<size_t>(b)].data_ptr(); });
  }

  size_t current_node = 0;  // the node being compiled

  // One scratchpad for all steps (they run one at a time), as large as the largest needs.
  at::Tensor scratchpad;
  std::vector<memory> scratchpad_users;

  void use_scratchpad(const dnnl::primitive& prim, std::unordered_map<int, memory>& args) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(prim.get_primitive_desc(),
                                                                dnnl_query_scratchpad_md, 0);
    if (md == nullptr) return;
    const memory::desc want(*md);
    if (want.get_size() == 0) return;
    if (!scratchpad.defined() || static_cast<size_t>(scratchpad.numel()) < want.get_size()) {
      scratchpad = at::empty({static_cast<int64_t>(want.get_size())}, at::kByte);
      for (auto& m : scratchpad_users) m.set_data_handle(scratchpad.data_ptr());
    }
    scratchpad_users.emplace_back(want, cpu_engine(), scratchpad.data_ptr());
    args[DNNL_ARG_SCRATCHPAD] = scratchpad_users.back();
  }

  int new_slot() {
    slot_last.push_back(-1);
    building.emplace_back();
    return slots++;
  }

  // Runs one step; `tensors`: the run's tensors by slot; `address`: an arena buffer's memory.
  template <typename Address>
  void execute(Step& s, std::vector<at::Tensor>& tensors, Address address) {
    if (s.primitive) {
      for (auto& [mem, slot] : s.slot_args) mem.set_data_handle(tensors[static_cast<size_t>(slot)].data_ptr());
      if (s.fill_bytes > 0) {
        auto* p = static_cast<float*>(s.args.at(s.fill_arg).get_data_handle());
        if (s.fill_value == 0.f) {
          std::memset(p, 0, s.fill_bytes);
        } else {
          std::fill_n(p, s.fill_bytes / sizeof(float), s.fill_value);
        }
      }
      try {
        s.prim.execute(stream, s.args);
      } catch (const dnnl::error& e) {
        throw Error(std::string("oneDNN primitive failed: ") + e.what(), ErrorKind::kInternal);
      }
      return;
    }
    const ir::Node& n = graph.nodes[s.node];
    std::vector<at::Tensor> args, wrapped;
    for (const auto& in : s.inputs) {
      switch (in.kind) {
        case FallbackInput::kNone: args.emplace_back(); break;
        case FallbackInput::kConstant: args.push_back(in.constant); break;
        case FallbackInput::kSlot: args.push_back(tensors[static_cast<size_t>(in.index)]); break;
        case FallbackInput::kBuffer:
          args.push_back(at::from_blob(address(in.index), in.sizes, at::kFloat));
          wrapped.push_back(args.back());
          break;
      }
    }
    ops::RunContext ctx;
    std::vector<at::Tensor> outs;
    try {
      outs = kernels[s.node](args, ctx);
    } catch (const Error& e) {
      throw e.with_context(n.describe());
    } catch (const c10::Error& e) {
      throw Error(n.describe() + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw Error(n.describe() + ": " + e.what());
    }
    for (size_t k = 0; k < s.output_slots.size(); ++k) {
      const int slot = s.output_slots[k];
      if (slot < 0) continue;
      if (k >= outs.size()) {
        throw Error(n.describe() + ": graft does not compute its output #" + std::to_string(k) +
                    " ('" + n.outputs[k] + "')");
      }
      at::Tensor t = std::move(outs[k]);
      // A view of an arena buffer would change when the buffer is reused.
      for (const auto& w : wrapped) {
        if (t.is_alias_of(w)) t = t.clone();
      }
      if (t.scalar_type() == at::kFloat) t = t.contiguous();
      if (compiling) {
        s.output_sizes[k] = t.sizes().vec();
      } else if (t.sizes() != at::IntArrayRef(s.output_sizes[k])) {
        throw Error(n.describe() + ": output '" + n.outputs[k] + "' changed shape between runs",
                    ErrorKind::kInternal);
      }
      tensors[static_cast<size_t>(slot)] = std::move(t);
    }
  }

  bool is_f32(const std::string& name, size_t rank) const {
    auto it = values.find(name);
    return it != values.end() && it->second.info.dtype == at::kFloat &&
           it->second.info.sizes.size() == rank;
  }

  // Binds `arg` of `step` to value `name` in layout `want`, reordering (once per layout) when
  // the value lives in another one.
  void bind(Step& step, int arg, const std::string& name, const memory::desc& want, bool read = true) {
    Value& v = values.at(name);
    if (v.in_arena && v.md == want) {
      step.args[arg] = memory(want, cpu_engine(), DNNL_MEMORY_NONE);
      (read ? step.reads : step.writes).push_back(v.buffer);
      attach(step.args[arg], v.buffer);
      return;
    }
    if (!v.in_arena && v.md == want) {
      memory m(want, cpu_engine(), DNNL_MEMORY_NONE);
      step.args[arg] = m;
      step.slot_args.emplace_back(m, v.slot);
      return;
    }
    for (const auto& [md, buffer] : v.copies) {
      if (md == want) {
        step.args[arg] = memory(want, cpu_engine(), DNNL_MEMORY_NONE);
        step.reads.push_back(buffer);
        attach(step.args[arg], buffer);
        return;
      }
    }
    const int buffer = new_buffer(want);
    reorder_into(name, want, buffer);
    v.copies.emplace_back(want, buffer);
    step.args[arg] = memory(want, cpu_engine(), DNNL_MEMORY_NONE);
    step.reads.push_back(buffer);
    attach(step.args[arg], buffer);
  }

  // A reorder step writing value `name` into `buffer` in layout `want`.
  void reorder_into(const std::string& name, const memory::desc& want, int buffer) {
    const Value& v = values.at(name);
    Step r;
    memory src(v.md, cpu_engine(), DNNL_MEMORY_NONE);
    if (v.in_arena) {
      r.reads.push_back(v.buffer);
      attach(src, v.buffer);
    } else {
      r.slot_args.emplace_back(src, v.slot);
    }
    memory dst(want, cpu_engine(), DNNL_MEMORY_NONE);
    r.writes.push_back(buffer);
    attach(dst, buffer);
    r.prim = dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, scratchpad_attr()));
    r.args = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    r.name = name;
    r.op = "Reorder";
    stats.reorders++;
    push(std::move(r));
  }

  void define(const std::string& name, const memory::desc& md, int buffer) {
    Value v;
    v.in_arena = true;
    v.buffer = buffer;
    v.md = md;
    v.info = {to_sizes(md), at::kFloat};
    values[name] = std::move(v);
  }

  const at::Tensor* initializer(const std::string& name) const {
    auto it = graph.initializers.find(name);
    return it == graph.initializers.end() ? nullptr : &it->second;
  }

  bool last_use_here(const std::string& name, size_t node) const {
    auto it = last_node_use.find(name);
    return it != last_node_use.end() && it->second == static_cast<int>(node) && !wanted.count(name);
  }

  // Binds initializer `name` (`w`, laid out as `plain`) reordered once into `want`, and the
  // bias `bias` (`bias_md`) when there is one.
  void bind_weights(Step& s, const std::string& name, const at::Tensor& w, const memory::desc& plain,
                    const memory::desc& want, const at::Tensor* bias, const memory::desc& bias_md) {
    s.args[DNNL_ARG_WEIGHTS] = weights.get(name, w, plain, want, stream);
    if (bias == nullptr) return;
    keep_alive.push_back(bias->contiguous());
    s.args[DNNL_ARG_BIAS] = memory(bias_md, cpu_engine(), keep_alive.back().data_ptr());
  }

  // --- Nodes oneDNN serves; each returns false (having changed nothing) to fall back. -------

  // A convolution node's geometry for input sizes `x`, or nullopt when oneDNN cannot run it.
  struct ConvGeometry {
    const at::Tensor* w = nullptr;
    const at::Tensor* b = nullptr;
    std::string z;  // the residual added before the activation ("" for none)
    int64_t group = 1;
    std::vector<int64_t> x, y, strides, dilations, kernel;
    memory::dims pad_l, pad_r;
    std::optional<Activation> act;

    int64_t channels_in() const { return x[1]; }
    int64_t channels_out() const { return y[1]; }
    bool pointwise() const {
      return kernel == std::vector<int64_t>{1, 1} && strides == std::vector<int64_t>{1, 1} && group == 1 &&
             pad_l == memory::dims{0, 0} && pad_r == memory::dims{0, 0};
    }
    bool depthwise() const { return group > 1 && group == x[1] && group == y[1]; }

    // Winograd (F(2x2,3x3) or F(4x4,3x3), oneDNN's pick) for 3x3 stride-1 convolutions: 1.5-2.5x
    // fewer multiplications than direct ones, but it works in blocked layouts (usually a reorder
    // either side) and its transformed weights are up to 4x larger, each used once per 4x4
    // output tile. So only where it pays: enough tiles (N * ceil(H/4) * ceil(W/4) >= 32; at
    // batch 1, 28x28 and larger) that the weights are not merely streamed from memory (the
    // hybrid's adapter, 256 -> 1088 at 17x17, 25 tiles: 4.7 ms against 3.7 direct), and enough
    // channels (in x out / (in + out) >= 24: transforms grow with in + out, products with
    // in x out). Thinner ones (>= 16) pay only with thousands of tiles, where oneDNN picks
    // F(4x4,3x3): InceptionResNetV2's 32 -> 32 and 32 -> 48 at 35x35, batch 32: 1.3 and 1.6 ms
    // against 1.9 and 2.7 direct; Inception v3 at batch 32: -6 %; at batch 1, with F(2x2,3x3),
    // no gain and reorders around them. Results differ from direct convolution's by rounding
    // (~2e-6 of the output's magnitude).
    bool winograd_pays() const {
      const double channel_ratio = static_cast<double>(x[1] * y[1]) / static_cast<double>(x[1] + y[1]);
      const int64_t tiles = y[0] * ((y[2] + 3) / 4) * ((y[3] + 3) / 4);
      return ((channel_ratio >= 24 && tiles >= 32) || (channel_ratio >= 16 && tiles >= 2048)) && group == 1 &&
             kernel == std::vector<int64_t>{3, 3} && strides == std::vector<int64_t>{1, 1} &&
             dilations == std::vector<int64_t>{1, 1};
    }
  };

  static bool is_conv(const ir::Node& n) {
    return (n.domain.empty() && n.op_type == "Conv") ||
           (n.domain == passes::kDomain && n.op_type == passes::kFusedConv);
  }

  std::optional<ConvGeometry> conv_geometry(const ir::Node& n, const std::vector<int64_t>& x) const {
    if (!is_conv(n) || n.inputs.size() < 2 || x.size() != 4) return std::nullopt;
    const bool fused = n.domain == passes::kDomain;
    ConvGeometry g;
    g.x = x;
    g.w = initializer(n.inputs[1]);
    const at::Tensor* w = g.w;
    if (w == nullptr || w->scalar_type() != at::kFloat || w->dim() != 4) return std::nullopt;
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      g.b = initializer(n.inputs[2]);
      if (g.b == nullptr || g.b->scalar_type() != at::kFloat || g.b->dim() != 1) return std::nullopt;
    }
    g.z = fused && n.inputs.size() > 3 ? n.inputs[3] : "";
    g.group = n.attributes.get_int("group", 1);
    g.strides = ints_or(n, "strides", {1, 1});
    g.dilations = ints_or(n, "dilations", {1, 1});
    g.kernel = {w->size(2), w->size(3)};
    if (g.strides.size() != 2 || g.dilations.size() != 2 ||
        !window_pads(n, x, g.kernel, g.strides, g.dilations, &g.pad_l, &g.pad_r)) {
      return std::nullopt;
    }
    if (g.group < 1 || x[1] != w->size(1) * g.group || w->size(0) % g.group != 0) return std::nullopt;
    g.y = {x[0], w->size(0), 0, 0};
    for (size_t i = 0; i < 2; ++i) {
      if (g.strides[i] < 1 || g.dilations[i] < 1) return std::nullopt;
      const int64_t span = x[i + 2] + g.pad_l[i] + g.pad_r[i] - ((g.kernel[i] - 1) * g.dilations[i] + 1);
      if (span < 0) return std::nullopt;
      g.y[i + 2] = span / g.strides[i] + 1;
    }
    const std::string act_name = fused ? n.attributes.get_string("activation", "") : "";
    if (!act_name.empty()) {
      g.act = activation_of(act_name, n.attributes.get_floats("activation_params", {}));
      if (!g.act) return std::nullopt;
    }
    return g;
  }

  // The one node reading value `name`, or nullptr (several readers, none, or a graph output).
  const ir::Node* sole_reader(const std::string& name, size_t* index = nullptr) const {
    auto it = readers.find(name);
    if (wanted.count(name) || it == readers.end() || it->second.size() != 1) return nullptr;
    if (index != nullptr) *index = it->second.front();
    return &graph.nodes[it->second.front()];
  }

  // Depthwise post-op fusion. A pointwise convolution whose only reader is a 3x3 depthwise one
  // (MobileNet's separable blocks) can compute both in one oneDNN primitive that keeps the
  // intermediate in cache, row band by row band, instead of writing it out and reading it back.
  // oneDNN 2.6 fuses only in the blocked nChw16c layout (in NHWC it runs the two one after the
  // other), and only pays where the intermediate would not stay in cache anyway: at >= 32 MiB
  // (MobileNetV1's first three blocks at batch 32: 23.7 ms against 28.1; at batch 1 fusion was
  // slower).
  static constexpr int64_t kDwFusionBytes = int64_t{32} << 20;

  struct DwPartner {
    size_t node;
    ConvGeometry geometry;
  };

  // The depthwise node fused into pointwise convolution `n` (geometry `pw`), or nullopt.
  std::optional<DwPartner> dw_partner(const ir::Node& n, const ConvGeometry& pw) const {
    if (!pw.pointwise() || !pw.z.empty() || pw.channels_in() % 16 != 0 || pw.channels_out() % 16 != 0) {
      return std::nullopt;
    }
    const auto& y = pw.y;
    if (y[0] * y[1] * y[2] * y[3] * static_cast<int64_t>(sizeof(float)) < kDwFusionBytes) return std::nullopt;
    size_t j = 0;
    const ir::Node* d = sole_reader(n.outputs[0], &j);
    if (d == nullptr || d->inputs[0] != n.outputs[0]) return std::nullopt;
    const auto dw = conv_geometry(*d, y);
    if (!dw || !dw->depthwise() || !dw->z.empty() || dw->kernel != std::vector<int64_t>{3, 3} ||
        dw->dilations != std::vector<int64_t>{1, 1} || dw->strides[0] != dw->strides[1] ||
        dw->strides[0] > 2 || dw->pad_l[0] != dw->pad_l[1]) {
      return std::nullopt;
    }
    // oneDNN's fused depthwise output is ceil(size / stride), padded at the end as needed; with
    // the same begin pad and output size, every window covers the same rows and columns.
    const int64_t s = dw->strides[0];
    for (size_t i = 2; i < 4; ++i) {
      if (dw->y[i] != (y[i] + s - 1) / s) return std::nullopt;
    }
    return DwPartner{j, *dw};
  }

  // Whether value `name` (sizes `x`) feeds a depthwise-fused pair, directly or through
  // depthwise and pointwise convolutions: its producer should then write nChw16c, saving a
  // reorder.
  bool feeds_dw_fusion(const std::string& name, const std::vector<int64_t>& x) const {
    const ir::Node* r = sole_reader(name);
    if (r == nullptr || r->inputs[0] != name) return false;
    const auto g = conv_geometry(*r, x);
    if (!g) return false;
    if (dw_partner(*r, *g)) return true;
    return (g->depthwise() || g->pointwise()) && g->z.empty() && g->channels_in() % 16 == 0 &&
           g->channels_out() % 16 == 0 && feeds_dw_fusion(r->outputs[0], g->y);
  }

  // Whether value `name` (sizes `x`) is read only by a convolution that runs Winograd.
  bool feeds_winograd(const std::string& name, const std::vector<int64_t>& x) const {
    const ir::Node* r = sole_reader(name);
    if (r == nullptr || r->inputs[0] != name) return false;
    const auto g = conv_geometry(*r, x);
    return g && g->winograd_pays();
  }

  bool conv(size_t index) {
    if (absorbed.count(index)) return true;  // computed by the convolution before it
    const ir::Node& n = graph.nodes[index];
    if (n.inputs.size() < 2 || !is_f32(n.inputs[0], 4)) return false;
    const auto geometry = conv_geometry(n, values.at(n.inputs[0]).info.sizes);
    if (!geometry) return false;
    const ConvGeometry& g = *geometry;
    if (!g.z.empty() && (!is_f32(g.z, 4) || values.at(g.z).info.sizes != g.y)) return false;
    const std::optional<DwPartner> partner = dw_partner(n, g);
    if (partner && conv_with_dw(index, g, *partner)) return true;

    // Layouts: oneDNN's pick, except in front of a depthwise-fused pair or a Winograd
    // convolution, which read nChw16c: depthwise and pointwise convolutions before such a pair
    // then run in it too, and a first convolution (< 16 input channels, e.g. RGB) reads the
    // plain input and writes nChw16c directly (oneDNN's direct kernel for that is also faster
    // than the NHWC one after a reorder of the input: MobileNetV1's at batch 32, 2.8 ms against
    // 4.0 + 0.9).
    Tag src_tag = Tag::any, dst_tag = Tag::any;
    if (g.z.empty() && g.channels_out() % 16 == 0) {
      const bool stem = g.channels_in() < 16 && g.group == 1 && values.at(n.inputs[0]).md == plain_desc(g.x);
      const bool to_pair = feeds_dw_fusion(n.outputs[0], g.y);
      if (to_pair && (g.depthwise() || g.pointwise()) && g.channels_in() % 16 == 0) {
        src_tag = dst_tag = Tag::nChw16c;
      } else if (stem && (to_pair || feeds_winograd(n.outputs[0], g.y))) {
        src_tag = Tag::nchw;
        dst_tag = Tag::nChw16c;
      }
    }
    const int64_t oc = g.channels_out();
    const memory::dims w_dims = g.group == 1 ? memory::dims{oc, g.w->size(1), g.kernel[0], g.kernel[1]}
                                             : memory::dims{g.group, oc / g.group, g.w->size(1), g.kernel[0], g.kernel[1]};
    const memory::desc w_plain(w_dims, DataType::f32, g.group == 1 ? Tag::oihw : Tag::goihw);
    const memory::desc b_md({oc}, DataType::f32, Tag::x);
    dnnl::post_ops po;
    if (!g.z.empty()) po.append_sum(1.f);
    if (g.act) append_activation(po, *g.act);
    dnnl::primitive_attr attr = scratchpad_attr();
    attr.set_post_ops(po);
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
    const auto make_pd = [&](dnnl::algorithm algorithm, Tag src, Tag dst) {
      const memory::dims dil{g.dilations[0] - 1, g.dilations[1] - 1};
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, algorithm, memory::desc(to_dims(g.x), DataType::f32, src),
          memory::desc(w_dims, DataType::f32, Tag::any), g.b ? b_md : memory::desc(),
          memory::desc(to_dims(g.y), DataType::f32, dst), to_dims(g.strides), dil, g.pad_l, g.pad_r);
      pd.emplace(d, attr, cpu_engine());
    };
    if (g.winograd_pays()) {
      try {
        make_pd(dnnl::algorithm::convolution_winograd, Tag::any, Tag::any);
      } catch (const dnnl::error&) {
        pd.reset();
      }
    }
    for (const Tag tag : {src_tag, Tag::any}) {
      if (pd) break;
      try {
        make_pd(dnnl::algorithm::convolution_direct, tag, tag == src_tag ? dst_tag : Tag::any);
      } catch (const dnnl::error&) {
        if (tag == Tag::any) return false;
      }
    }
    Step s;
    s.prim = dnnl::convolution_forward(*pd);
    bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
    bind_weights(s, n.inputs[1], *g.w, w_plain, pd->weights_desc(), g.b, b_md);
    const memory::desc dst_md = pd->dst_desc();
    int dst = -1;
    if (!g.z.empty()) {
      const Value& zv = values.at(g.z);
      if (zv.in_arena && zv.md == dst_md && last_use_here(g.z, index) && g.z != n.inputs[0] &&
          !shared(zv.buffer, g.z)) {
        dst = zv.buffer;  // the sum accumulates into the residual's own buffer
      } else {
        dst = new_buffer(dst_md);
        reorder_into(g.z, dst_md, dst);
      }
    } else {
      dst = new_buffer(dst_md);
    }
    s.args[DNNL_ARG_DST] = memory(dst_md, cpu_engine(), DNNL_MEMORY_NONE);
    attach(s.args[DNNL_ARG_DST], dst);
    s.writes.push_back(dst);
    if (!g.z.empty()) s.reads.push_back(dst);
    push(std::move(s));
    define(n.outputs[0], dst_md, dst);
    return true;
  }

  // Pointwise convolution `index` (geometry `pw`) with its depthwise partner as a post-op, both
  // in nChw16c; false (having changed nothing) when oneDNN declines.
  bool conv_with_dw(size_t index, const ConvGeometry& pw, const DwPartner& partner) {
    const ir::Node& n = graph.nodes[index];
    const ir::Node& d = graph.nodes[partner.node];
    const ConvGeometry& dw = partner.geometry;
    const int64_t c = pw.channels_out();
    dnnl::post_ops po;
    if (pw.act) append_activation(po, *pw.act);
    po.append_dw(DataType::f32, DataType::f32, DataType::f32, 3, dw.strides[0], dw.pad_l[0], 0, {});
    if (dw.act) append_activation(po, *dw.act);
    dnnl::primitive_attr attr = scratchpad_attr();
    attr.set_post_ops(po);
    const memory::dims w_dims{c, pw.channels_in(), 1, 1};
    const memory::desc b_md({c}, DataType::f32, Tag::x);
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
    try {
      dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
          memory::desc(to_dims(pw.x), DataType::f32, Tag::nChw16c), memory::desc(w_dims, DataType::f32, Tag::any),
          pw.b ? b_md : memory::desc(), memory::desc(to_dims(pw.y), DataType::f32, Tag::nChw16c), {1, 1},
          {0, 0}, {0, 0}, {0, 0});
      pd.emplace(desc, attr, cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    if (to_sizes(pd->dst_desc()) != dw.y || std::string(pd->impl_info_str()).rfind("ref", 0) == 0) {
      return false;  // not the fused kernel (oneDNN's reference fusion runs the two apart)
    }
    Step s;
    s.prim = dnnl::convolution_forward(*pd);
    bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
    bind_weights(s, n.inputs[1], *pw.w, memory::desc(w_dims, DataType::f32, Tag::oihw), pd->weights_desc(),
                 pw.b, b_md);
    const int dw_arg = DNNL_ARG_ATTR_POST_OP_DW;
    s.args[dw_arg | DNNL_ARG_WEIGHTS] =
        weights.get(d.inputs[1], *dw.w, memory::desc({c, 1, 1, 3, 3}, DataType::f32, Tag::goihw),
                    pd->query_md(dnnl::query::exec_arg_md, dw_arg | DNNL_ARG_WEIGHTS), stream);
    keep_alive.push_back(dw.b ? dw.b->contiguous() : at::zeros({c}, at::kFloat));
    s.args[dw_arg | DNNL_ARG_BIAS] = memory(b_md, cpu_engine(), keep_alive.back().data_ptr());
    s.name = (n.name.empty() ? n.outputs[0] : n.name) + "+" + (d.name.empty() ? d.outputs[0] : d.name);
    s.op = "Conv+DepthwiseConv";
    emit_output(s, d.outputs[0], pd->dst_desc());
    absorbed.insert(partner.node);
    return true;
  }

  // ReduceMean over the two spatial axes of a 4-D tensor: global average pooling. Its keepdims,
  // or nullopt. (Axes as an attribute, opsets up to 17, as the reference kernel reads them.)
  std::optional<bool> spatial_mean(const ir::Node& n) const {
    if (n.inputs.size() != 1) return std::nullopt;
    std::vector<int64_t> axes = n.attributes.get_ints("axes", {});
    for (auto& axis : axes) axis = axis < 0 ? axis + 4 : axis;
    std::sort(axes.begin(), axes.end());
    if (axes != std::vector<int64_t>{2, 3}) return std::nullopt;
    return n.attributes.get_int("keepdims", 1) != 0;
  }

  bool pool(size_t index) {
    const ir::Node& n = graph.nodes[index];
    std::optional<bool> keepdims = true;
    if (n.op_type == "ReduceMean") keepdims = spatial_mean(n);
    const bool global = n.op_type == "GlobalAveragePool" || n.op_type == "ReduceMean";
    if (!keepdims || !is_f32(n.inputs[0], 4)) return false;
    for (size_t k = 1; k < n.outputs.size(); ++k) {
      if (!n.outputs[k].empty() && used(n.outputs[k])) return false;  // Indices wanted
    }
    const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
    std::vector<int64_t> y{x[0], x[1], 1, 1};
    std::vector<int64_t> kernel{x[2], x[3]}, strides{1, 1};
    memory::dims pad_l{0, 0}, pad_r{0, 0};
    dnnl::algorithm alg = dnnl::algorithm::pooling_avg_exclude_padding;
    if (!global) {
      kernel = n.attributes.get_ints("kernel_shape", {});
      strides = ints_or(n, "strides", {1, 1});
      const auto dilations = ints_or(n, "dilations", {1, 1});
      if (kernel.size() != 2 || strides.size() != 2 || dilations != std::vector<int64_t>{1, 1} ||
          !window_pads(n, x, kernel, strides, dilations, &pad_l, &pad_r)) {
        return false;
      }
      const bool include = n.attributes.get_int("count_include_pad", 0) != 0;
      alg = n.op_type == "MaxPool" ? dnnl::algorithm::pooling_max
            : include              ? dnnl::algorithm::pooling_avg_include_padding
                                   : dnnl::algorithm::pooling_avg_exclude_padding;
      // ceil_mode: the last window may hang over the end; oneDNN sees that as more end padding,
      // which max pooling and averaging without padding ignore.
      // Output sizes as the reference kernel (ATen's pooling of the explicitly padded input)
      // computes them.
      const bool ceil = n.attributes.get_int("ceil_mode", 0) != 0;
      for (size_t i = 0; i < 2; ++i) {
        const int64_t padded = x[i + 2] + pad_l[i] + pad_r[i];
        if (strides[i] < 1 || padded < kernel[i]) return false;
        int64_t out = (padded - kernel[i] + (ceil ? strides[i] - 1 : 0)) / strides[i] + 1;
        if (ceil && (out - 1) * strides[i] >= padded) --out;
        y[i + 2] = out;
      }
      for (size_t i = 0; i < 2; ++i) {
        const int64_t end = (y[i + 2] - 1) * strides[i] + kernel[i] - x[i + 2] - pad_l[i];
        if (end > pad_r[i]) {
          if (alg == dnnl::algorithm::pooling_avg_include_padding) return false;
          pad_r[i] = end;
        }
      }
    }
    const memory::desc src_md = values.at(n.inputs[0]).md;
    std::optional<dnnl::pooling_forward::primitive_desc> pd;
    try {
      const auto make_pd = [&](Tag dst_tag) {
        dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_md,
                                      memory::desc(to_dims(y), DataType::f32, dst_tag), to_dims(strides),
                                      to_dims(kernel), pad_l, pad_r);
        pd.emplace(d, scratchpad_attr(), cpu_engine());
      };
      make_pd(Tag::any);
      // Without keepdims the [N, C, 1, 1] result is read as [N, C]: its layout must be plain
      // nchw or nhwc (the same bytes when H = W = 1).
      const memory::desc nhwc(to_dims(y), DataType::f32, Tag::nhwc);
      if (!*keepdims && pd->dst_desc() != plain_desc(y) && pd->dst_desc() != nhwc) make_pd(Tag::nhwc);
    } catch (const dnnl::error&) {
      return false;
    }
    Step s;
    s.prim = dnnl::pooling_forward(*pd);
    bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
    const int dst = emit_output(s, n.outputs[0], pd->dst_desc());
    if (!*keepdims) define(n.outputs[0], plain_desc({y[0], y[1]}), dst);
    return true;
  }

  // A primitive reading node `n`'s input 0 and writing its output 0, from the primitive
  // descriptor `make_pd` returns; false (nothing changed) if oneDNN refuses it.
  template <typename Primitive, typename MakePd>
  bool unary(const ir::Node& n, MakePd&& make_pd) {
    std::optional<typename Primitive::primitive_desc> pd;
    try {
      pd.emplace(make_pd());
    } catch (const dnnl::error&) {
      return false;
    }
    Step s;
    s.prim = Primitive(*pd);
    bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
    emit_output(s, n.outputs[0], pd->dst_desc());
    return true;
  }

  // Constant Pad of the spatial axes of a 4-D tensor (pads and value known when compiling): the
  // output buffer is filled with the value, then the input copied inside it.
  bool pad(size_t index) {
    const ir::Node& n = graph.nodes[index];
    if (!is_f32(n.inputs[0], 4) || n.attributes.get_string("mode", "constant") != "constant") return false;
    std::vector<int64_t> pads;
    float value = 0;
    if (graph.opset() < 11) {
      pads = n.attributes.get_ints("pads", {});
      value = n.attributes.get_float("value", 0.f);
    } else {
      const at::Tensor* p = n.inputs.size() > 1 ? initializer(n.inputs[1]) : nullptr;
      if (p == nullptr || p->scalar_type() != at::kLong) return false;
      const at::Tensor c = p->contiguous();
      pads.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const at::Tensor* v = initializer(n.inputs[2]);
        if (v == nullptr || v->numel() != 1) return false;
        value = v->to(at::kFloat).reshape({-1})[0].item<float>();
      }
    }
    if (pads.size() != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0) return false;
    for (int64_t p : pads) {
      if (p < 0) return false;
    }
    const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
    const std::vector<int64_t> y{x[0], x[1], x[2] + pads[2] + pads[6], x[3] + pads[3] + pads[7]};
    // Plain stays plain; anything else is padded in nhwc.
    const Tag tag = values.at(n.inputs[0]).md == plain_desc(x) ? Tag::nchw : Tag::nhwc;
    const memory::desc src_md(to_dims(x), DataType::f32, tag), dst_md(to_dims(y), DataType::f32, tag);
    const memory::desc inside = dst_md.submemory_desc(to_dims(x), {0, 0, pads[2], pads[3]});
    Step s;
    try {
      s.prim = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), src_md, cpu_engine(), inside,
                                                           scratchpad_attr()));
    } catch (const dnnl::error&) {
      return false;
    }
    bind(s, DNNL_ARG_FROM, n.inputs[0], src_md);
    s.fill_arg = DNNL_ARG_TO;
    s.fill_bytes = dst_md.get_size();
    s.fill_value = value;
    const int dst = new_buffer(dst_md);
    s.args[DNNL_ARG_TO] = memory(inside, cpu_engine(), DNNL_MEMORY_NONE);
    attach(s.args[DNNL_ARG_TO], dst);
    s.writes.push_back(dst);
    push(std::move(s));
    define(n.outputs[0], dst_md, dst);
    return true;
  }

  // Softmax over the last axis of a 2-D tensor (a classifier's): the same for every opset.
  bool softmax(size_t index) {
    const ir::Node& n = graph.nodes[index];
    if (!is_f32(n.inputs[0], 2)) return false;
    const int64_t axis = n.attributes.get_int("axis", graph.opset() < 13 ? 1 : -1);
    if (axis != 1 && axis != -1) return false;
    return unary<dnnl::softmax_forward>(n, [&] {
      dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, values.at(n.inputs[0]).md, 1);
      return dnnl::softmax_forward::primitive_desc(d, scratchpad_attr(), cpu_engine());
    });
  }

  // Resize, linear, with half-pixel coordinates (oneDNN's resampling: source coordinate
  // (o + 0.5) * in / out - 0.5, clamped at the edges), of the two spatial axes of a 4-D tensor
  // whose output size is known when compiling.
  bool resize(size_t index) {
    const ir::Node& n = graph.nodes[index];
    const auto& a = n.attributes;
    if (graph.opset() < 11 || !is_f32(n.inputs[0], 4) || a.get_string("mode", "nearest") != "linear" ||
        a.get_int("antialias", 0) != 0 || a.has("axes") ||
        a.get_string("keep_aspect_ratio_policy", "stretch") != "stretch") {
      return false;
    }
    const std::string transform = a.get_string("coordinate_transformation_mode", "half_pixel");
    const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
    std::vector<int64_t> y;
    const at::Tensor* sizes = n.inputs.size() > 3 && !n.inputs[3].empty() ? initializer(n.inputs[3]) : nullptr;
    const at::Tensor* scales = n.inputs.size() > 2 && !n.inputs[2].empty() ? initializer(n.inputs[2]) : nullptr;
    if (sizes != nullptr && sizes->numel() == 4 && sizes->scalar_type() == at::kLong) {
      const at::Tensor c = sizes->contiguous();
      y.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + 4);
    } else if (sizes == nullptr && scales != nullptr && scales->numel() == 4) {
      // Coordinates follow the given scales: only exact ones (out = in * scale) are out / in.
      const at::Tensor c = scales->to(at::kDouble).contiguous();
      for (size_t i = 0; i < 4; ++i) {
        const double exact = static_cast<double>(x[i]) * c.data_ptr<double>()[i];
        if (exact != std::floor(exact)) return false;
        y.push_back(static_cast<int64_t>(exact));
      }
    } else {
      return false;
    }
    if (y[0] != x[0] || y[1] != x[1] || y[2] < 1 || y[3] < 1) return false;
    // pytorch_half_pixel differs from half_pixel only for an output of size 1.
    if (transform != "half_pixel" && !(transform == "pytorch_half_pixel" && y[2] > 1 && y[3] > 1)) return false;
    return unary<dnnl::resampling_forward>(n, [&] {
      dnnl::resampling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_linear,
                                       values.at(n.inputs[0]).md,
                                       memory::desc(to_dims(y), DataType::f32, Tag::any));
      return dnnl::resampling_forward::primitive_desc(d, scratchpad_attr(), cpu_engine());
    });
  }

  bool eltwise(size_t index) {
    const ir::Node& n = graph.nodes[index];
    if (!is_f32(n.inputs[0], 4)) return false;
    std::vector<float> p;
    if (n.op_type == "LeakyRelu") p = {n.attributes.get_float("alpha", 0.01f)};
    if (n.op_type == "HardSigmoid") {
      p = {n.attributes.get_float("alpha", 0.2f), n.attributes.get_float("beta", 0.5f)};
    }
    if (n.op_type == "Clip") {
      float lo = n.attributes.get_float("min", -std::numeric_limits<float>::max());
      float hi = n.attributes.get_float("max", std::numeric_limits<float>::max());
      for (size_t k = 1; k < 3 && k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        const at::Tensor* c = initializer(n.inputs[k]);
        if (c == nullptr || c->numel() != 1 || c->scalar_type() != at::kFloat) return false;
        (k == 1 ? lo : hi) = c->item<float>();
      }
      p = {lo, hi};
    }
    const auto act = activation_of(n.op_type, p);
    if (!act) return false;
    return unary<dnnl::eltwise_forward>(n, [&] {
      dnnl::primitive_attr attr = scratchpad_attr();
      if (act->hard_sigmoid) {
        dnnl::post_ops po;
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip_v2, 0.f, 1.f);
        attr.set_post_ops(po);
      }
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, act->algorithm,
                                    values.at(n.inputs[0]).md, act->alpha, act->beta);
      return dnnl::eltwise_forward::primitive_desc(d, attr, cpu_engine());
    });
  }

  bool binary(size_t index) {
    const ir::Node& n = graph.nodes[index];
    if (n.inputs.size() != 2) return false;
    std::string a = n.inputs[0], b = n.inputs[1];
    std::vector<int64_t> y;  // the output: the larger operand's sizes, when one is full
    for (const auto& in : {a, b}) {
      if (initializer(in) == nullptr && is_f32(in, 4)) {
        const auto& sz = values.at(in).info.sizes;
        if (y.empty() || std::accumulate(sz.begin(), sz.end(), int64_t{1}, std::multiplies<>()) >
                             std::accumulate(y.begin(), y.end(), int64_t{1}, std::multiplies<>())) {
          y = sz;
        }
      }
    }
    if (y.empty()) return false;
    const bool commutative = n.op_type == "Add" || n.op_type == "Mul";
    auto full = [&](const std::string& name) {
      return initializer(name) == nullptr && is_f32(name, 4) && values.at(name).info.sizes == y;
    };
    if (!full(a)) {
      if (!commutative || !full(b)) return false;
      std::swap(a, b);
    }
    // The second operand: a full tensor, or one broadcast along some axes (a constant or not).
    std::vector<int64_t> b_sizes;
    const at::Tensor* constant = initializer(b);
    if (constant != nullptr) {
      if (constant->scalar_type() != at::kFloat || constant->dim() > 4) return false;
      b_sizes = constant->sizes().vec();
    } else {
      if (!is_f32(b, 4)) return false;
      b_sizes = values.at(b).info.sizes;
    }
    b_sizes.insert(b_sizes.begin(), 4 - b_sizes.size(), 1);
    for (size_t i = 0; i < 4; ++i) {
      if (b_sizes[i] != y[i] && b_sizes[i] != 1) return false;
    }
    const dnnl::algorithm alg = n.op_type == "Add"   ? dnnl::algorithm::binary_add
                                : n.op_type == "Sub" ? dnnl::algorithm::binary_sub
                                : n.op_type == "Mul" ? dnnl::algorithm::binary_mul
                                                     : dnnl::algorithm::binary_div;
    const memory::desc a_md = values.at(a).md;
    const memory::desc b_md = b_sizes == y ? a_md : plain_desc(b_sizes);
    std::optional<dnnl::binary::primitive_desc> pd;
    try {
      dnnl::binary::desc d(alg, a_md, b_md, a_md);
      pd.emplace(d, scratchpad_attr(), cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    Step s;
    s.prim = dnnl::binary(*pd);
    bind(s, DNNL_ARG_SRC_0, a, a_md);
    if (constant != nullptr) {
      keep_alive.push_back(constant->contiguous());
      s.args[DNNL_ARG_SRC_1] = memory(b_md, cpu_engine(), keep_alive.back().data_ptr());
    } else {
      bind(s, DNNL_ARG_SRC_1, b, b_md);
    }
    emit_output(s, n.outputs[0], pd->dst_desc());
    return true;
  }

  // Gemm with constant weights, Y = A B' + C (alpha, beta 1; C a row of biases or absent): a
  // classifier. (Through ATen it would call OpenBLAS, whose own threads then spin against
  // oneDNN's OpenMP threads on the next run.)
  bool gemm(size_t index) {
    const ir::Node& n = graph.nodes[index];
    if (n.inputs.size() < 2 || !is_f32(n.inputs[0], 2) || initializer(n.inputs[0]) != nullptr) return false;
    if (n.attributes.get_int("transA", 0) != 0 || n.attributes.get_float("alpha", 1.f) != 1.f ||
        n.attributes.get_float("beta", 1.f) != 1.f) {
      return false;
    }
    const at::Tensor* w = initializer(n.inputs[1]);
    if (w == nullptr || w->scalar_type() != at::kFloat || w->dim() != 2) return false;
    const bool trans_b = n.attributes.get_int("transB", 0) != 0;
    const int64_t k = trans_b ? w->size(1) : w->size(0), m = trans_b ? w->size(0) : w->size(1);
    const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
    if (x[1] != k) return false;
    const at::Tensor* c = nullptr;
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      c = initializer(n.inputs[2]);
      if (c == nullptr || c->scalar_type() != at::kFloat || c->numel() != m ||
          (c->dim() == 2 && c->size(0) != 1) || c->dim() > 2) {
        return false;
      }
    }
    // B as oneDNN's (out, in) weights: B itself when transposed, else B read column-wise.
    const memory::desc w_plain({m, k}, DataType::f32, trans_b ? Tag::oi : Tag::io);
    const memory::desc b_md({m}, DataType::f32, Tag::x);
    std::optional<dnnl::inner_product_forward::primitive_desc> pd;
    try {
      dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, values.at(n.inputs[0]).md,
                                          memory::desc({m, k}, DataType::f32, Tag::any),
                                          c ? b_md : memory::desc(),
                                          memory::desc({x[0], m}, DataType::f32, Tag::any));
      pd.emplace(d, scratchpad_attr(), cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    Step s;
    s.prim = dnnl::inner_product_forward(*pd);
    bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
    bind_weights(s, n.inputs[1], *w, w_plain, pd->weights_desc(), c, b_md);
    emit_output(s, n.outputs[0], pd->dst_desc());
    return true;
  }

  bool concat(size_t index) {
    const ir::Node& n = graph.nodes[index];
    int64_t axis = n.attributes.get_int("axis", 1);
    if (axis < 0) axis += 4;
    if (axis != 1 || n.inputs.empty()) return false;
    std::vector<memory::desc> srcs;
    bool any_nhwc = false, all_nhwc = true;
    for (const auto& in : n.inputs) {
      if (in.empty() || initializer(in) != nullptr || !is_f32(in, 4)) return false;
      const Value& v = values.at(in);
      srcs.push_back(v.md);
      const bool nhwc = v.md == memory::desc(to_dims(v.info.sizes), DataType::f32, Tag::nhwc);
      any_nhwc = any_nhwc || nhwc;
      all_nhwc = all_nhwc && nhwc;
    }
    // Inputs in different layouts (a Winograd convolution's blocked output beside direct
    // ones' nhwc) would take oneDNN's slow generic concat: reorder the odd ones instead.
    if (any_nhwc && !all_nhwc) {
      for (size_t k = 0; k < srcs.size(); ++k) {
        srcs[k] = memory::desc(to_dims(values.at(n.inputs[k]).info.sizes), DataType::f32, Tag::nhwc);
      }
    }
    std::optional<dnnl::concat::primitive_desc> pd;
    try {
      pd.emplace(1, srcs, cpu_engine(), scratchpad_attr());
    } catch (const dnnl::error&) {
      return false;
    }
    Step s;
    s.prim = dnnl::concat(*pd);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      bind(s, DNNL_ARG_MULTIPLE_SRC + static_cast<int>(k), n.inputs[k], srcs[k]);
    }
    emit_output(s, n.outputs[0], pd->dst_desc());
    return true;
  }

  // Pushes `s`, writing value `name` (layout `md`) into a new buffer, which it returns.
  int emit_output(Step& s, const std::string& name, const memory::desc& md) {
    const int dst = new_buffer(md);
    s.args[DNNL_ARG_DST] = memory(md, cpu_engine(), DNNL_MEMORY_NONE);
    attach(s.args[DNNL_ARG_DST], dst);
    s.writes.push_back(dst);
    push(std::move(s));
    define(name, md, dst);
    return dst;
  }

  // The arena buffer holding value `name` (in the arena) in plain layout: its own, or a
  // reordered copy made once.
  int plain_buffer(const std::string& name) {
    Value& v = values.at(name);
    const memory::desc plain = plain_desc(v.info.sizes);
    const auto& x = v.info.sizes;
    // [N, C, 1, 1] in nhwc is the same bytes as plain.
    if (v.md == plain || (x.size() == 4 && x[2] * x[3] == 1 &&
                          v.md == memory::desc(to_dims(x), DataType::f32, Tag::nhwc))) {
      return v.buffer;
    }
    for (const auto& [md, b] : v.copies) {
      if (md == plain) return b;
    }
    const int buffer = new_buffer(plain);
    reorder_into(name, plain, buffer);
    v.copies.emplace_back(plain, buffer);
    return buffer;
  }

  // Whether a value other than `name` lives in (or has a copy in) arena buffer `buffer`.
  bool shared(int buffer, const std::string& name) const {
    for (const auto& [other, v] : values) {
      if (other == name) continue;
      if (v.in_arena && v.buffer == buffer) return true;
      for (const auto& [md, b] : v.copies) {
        if (b == buffer) return true;
      }
    }
    return false;
  }

  // Flatten, and Reshape to a constant shape, of a float tensor in the arena: its plain bytes
  // under another shape (no step; a copy only if the value is in a blocked layout).
  bool alias(size_t index) {
    const ir::Node& n = graph.nodes[index];
    auto it = values.find(n.inputs[0]);
    if (it == values.end() || !it->second.in_arena || it->second.info.dtype != at::kFloat) return false;
    const std::vector<int64_t> x = it->second.info.sizes;
    const int64_t count = std::accumulate(x.begin(), x.end(), int64_t{1}, std::multiplies<>());
    std::vector<int64_t> y;
    if (n.op_type == "Flatten") {
      int64_t axis = n.attributes.get_int("axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(x.size());
      if (axis < 0 || axis > static_cast<int64_t>(x.size())) return false;
      const int64_t rows = std::accumulate(x.begin(), x.begin() + axis, int64_t{1}, std::multiplies<>());
      y = {rows, count / std::max<int64_t>(rows, 1)};
    } else {
      const at::Tensor* shape = n.inputs.size() > 1 ? initializer(n.inputs[1]) : nullptr;
      if (shape == nullptr || shape->scalar_type() != at::kLong || shape->dim() != 1) return false;
      const bool allow_zero = graph.opset() >= 14 && n.attributes.get_int("allowzero", 0) != 0;
      const at::Tensor c = shape->contiguous();
      y.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
      int64_t known = 1, infer = -1;
      for (size_t i = 0; i < y.size(); ++i) {
        if (y[i] == 0 && !allow_zero) {
          if (i >= x.size()) return false;
          y[i] = x[i];
        }
        if (y[i] == -1) {
          if (infer >= 0) return false;
          infer = static_cast<int64_t>(i);
        } else if (y[i] < 0) {
          return false;
        } else {
          known *= y[i];
        }
      }
      if (infer >= 0) {
        if (known == 0 || count % known != 0) return false;
        y[static_cast<size_t>(infer)] = count / known;
      }
    }
    if (y.empty() || y.size() > 5 ||
        std::accumulate(y.begin(), y.end(), int64_t{1}, std::multiplies<>()) != count) {
      return false;  // the reference kernel reports it
    }
    define(n.outputs[0], plain_desc(y), plain_buffer(n.inputs[0]));
    return true;
  }

  // Any node, by its reference kernel on plain tensors.
  void reference(size_t index) {
    const ir::Node& n = graph.nodes[index];
    Step s;
    s.primitive = false;
    s.node = index;
    for (const auto& in : n.inputs) {
      FallbackInput fi;
      if (in.empty()) {
        fi.kind = FallbackInput::kNone;
      } else if (const at::Tensor* c = initializer(in)) {
        fi.kind = FallbackInput::kConstant;
        fi.constant = *c;
      } else {
        const Value& v = values.at(in);
        if (v.in_arena) {
          const int buffer = plain_buffer(in);
          fi.kind = FallbackInput::kBuffer;
          fi.index = buffer;
          fi.sizes = v.info.sizes;
          s.reads.push_back(buffer);
        } else {
          fi.kind = FallbackInput::kSlot;
          fi.index = v.slot;
        }
      }
      s.inputs.push_back(std::move(fi));
    }
    for (const auto& out : n.outputs) {
      s.output_slots.push_back(out.empty() || !used(out) ? -1 : new_slot());
      s.output_sizes.emplace_back();
    }
    stats.reference_nodes++;
    stats.reference_ops[(n.domain.empty() ? "" : n.domain + ".") + n.op_type]++;
    push(std::move(s));  // runs it: now its outputs' shapes are known
    const Step& done = steps.back();
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      const int slot = done.output_slots[k];
      if (slot < 0) continue;
      const at::Tensor& t = building[static_cast<size_t>(slot)];
      Value v;
      v.slot = slot;
      v.info = {t.sizes().vec(), t.scalar_type()};
      if (v.info.dtype == at::kFloat && !v.info.sizes.empty() && v.info.sizes.size() <= 5) {
        v.md = plain_desc(v.info.sizes);
      }
      values[n.outputs[k]] = std::move(v);
    }
  }

  // Read by a needed node, or requested.
  bool used(const std::string& name) const { return last_node_use.count(name) || wanted.count(name); }

  std::map<std::string, at::Tensor> first_result;

  // The requested outputs, as plain tensors of their own.
  std::map<std::string, at::Tensor> collect(const std::vector<at::Tensor>& tensors) {
    stream.wait();
    std::map<std::string, at::Tensor> result;
    for (auto& o : outputs) {
      if (o.slot >= 0) {
        result[o.name] = tensors[static_cast<size_t>(o.slot)];
        continue;
      }
      at::Tensor t = at::empty(o.sizes, at::kFloat);
      o.dst.set_data_handle(t.data_ptr());
      o.reorder->execute(stream, o.args);
      result[o.name] = std::move(t);
    }
    stream.wait();
    return result;
  }

  // While compiling: the scratch memory and first-run tensors of values node `index` read last.
  void forget_dead_inputs(size_t index) {
    if (!compiling) return;
    for (const auto& in : graph.nodes[index].inputs) {
      if (in.empty() || wanted.count(in) || !last_use_here(in, index)) continue;
      auto it = values.find(in);
      if (it == values.end()) continue;
      const Value& v = it->second;
      if (v.slot >= 0) building[static_cast<size_t>(v.slot)].reset();
      std::vector<int> held;
      if (v.in_arena) held.push_back(v.buffer);
      for (const auto& [md, b] : v.copies) held.push_back(b);
      values.erase(it);
      for (int b : held) {
        bool live = false;  // another value may own the buffer (a sum accumulated in place)
        for (const auto& [name, other] : values) {
          live = live || (other.in_arena && other.buffer == b);
          for (const auto& [md, c] : other.copies) live = live || c == b;
        }
        if (!live) scratch[static_cast<size_t>(b)] = at::Tensor();
      }
    }
  }

  // Memory objects waiting for their arena buffer's address.
  std::vector<std::pair<memory, int>> pending_;

  // Assigns arena buffers to physical buffers (best fit among the free ones) and points every
  // memory object at its buffer.
  void plan_arena() {
    std::vector<std::vector<int>> born(steps.size()), dies(steps.size());
    for (size_t b = 0; b < buffers.size(); ++b) {
      if (buffers[b].first < 0) continue;
      born[static_cast<size_t>(buffers[b].first)].push_back(static_cast<int>(b));
      if (buffers[b].last != INT_MAX) dies[static_cast<size_t>(buffers[b].last)].push_back(static_cast<int>(b));
    }
    std::vector<size_t> sizes;
    std::vector<bool> busy;
    for (size_t i = 0; i < steps.size(); ++i) {
      for (int b : born[i]) {
        const size_t need = buffers[static_cast<size_t>(b)].bytes;
        size_t best = SIZE_MAX;
        for (size_t p = 0; p < sizes.size(); ++p) {
          if (!busy[p] && sizes[p] >= need && (best == SIZE_MAX || sizes[p] < sizes[best])) best = p;
        }
        if (best == SIZE_MAX) {  // grow the largest free one, else add one
          for (size_t p = 0; p < sizes.size(); ++p) {
            if (!busy[p] && (best == SIZE_MAX || sizes[p] > sizes[best])) best = p;
          }
          if (best == SIZE_MAX) {
            sizes.push_back(0);
            busy.push_back(false);
            best = sizes.size() - 1;
          }
          sizes[best] = need;
        }
        busy[best] = true;
        buffers[static_cast<size_t>(b)].physical = best;
      }
      for (int b : dies[i]) busy[buffers[static_cast<size_t>(b)].physical] = false;
    }
    for (size_t p = 0; p < sizes.size(); ++p) {
      arena.push_back(at::empty({static_cast<int64_t>(std::max<size_t>(sizes[p], 1))}, at::kByte));
      stats.arena_bytes += static_cast<int64_t>(sizes[p]);
    }
    for (auto& [mem, b] : pending_) mem.set_data_handle(address(b));
  }

  void* address(int buffer) const {
    return arena[buffers[static_cast<size_t>(buffer)].physical].data_ptr();
  }
};

Program::Program(const ir::Graph& g, const std::vector<ops::Kernel>& kernels,
                 const std::vector<bool>& needed, const std::vector<std::string>& outputs,
                 const std::map<std::string, at::Tensor>& inputs, WeightCache& weights)
    : impl_(std::make_unique<Impl>(g, kernels, weights)) {
  Impl& p = *impl_;
  at::internal::lazy_init_num_threads();
  p.wanted.insert(outputs.begin(), outputs.end());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    for (const auto& in : g.nodes[i].inputs) {
      p.last_node_use[in] = static_cast<int>(i);
      if (!in.empty()) p.readers[in].push_back(i);
    }
  }
  for (const auto& name : g.inputs) {
    Impl::Value v;
    v.slot = p.new_slot();
    const at::Tensor& t = inputs.at(name);
    p.building[static_cast<size_t>(v.slot)] = t.contiguous();
    v.info = {t.sizes().vec(), t.scalar_type()};
    if (v.info.dtype == at::kFloat && !v.info.sizes.empty() && v.info.sizes.size() <= 5) {
      v.md = plain_desc(v.info.sizes);
    }
    p.input_slots.emplace_back(name, v.slot);
    p.values[name] = std::move(v);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    const ir::Node& n = g.nodes[i];
    const std::string& op = n.op_type;
    p.current_node = i;
    bool done = false;
    if (n.domain.empty() || n.domain == passes::kDomain) {
      if (Impl::is_conv(n)) {
        done = p.conv(i);
      } else if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "ReduceMean") {
        done = p.pool(i);
      } else if (op == "Relu" || op == "LeakyRelu" || op == "Clip" || op == "Sigmoid" ||
                 op == "Tanh" || op == "HardSwish" || op == "HardSigmoid") {
        done = p.eltwise(i);
      } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
        done = p.binary(i);
      } else if (op == "Concat") {
        done = p.concat(i);
      } else if (op == "Gemm") {
        done = p.gemm(i);
      } else if (op == "Resize") {
        done = p.resize(i);
      } else if (op == "Flatten" || op == "Reshape") {
        done = p.alias(i);
      } else if (op == "Pad") {
        done = p.pad(i);
      } else if (op == "Softmax") {
        done = p.softmax(i);
      }
    }
    if (done) {
      p.stats.onednn_nodes++;
    } else {
      p.reference(i);
    }
    p.forget_dead_inputs(i);
  }
  for (const auto& name : outputs) {
    if (p.initializer(name) != nullptr) continue;  // the session answers those
    auto it = p.values.find(name);
    if (it == p.values.end()) throw Error("'" + name + "' was not computed", ErrorKind::kInternal);
    const Impl::Value& v = it->second;
    Impl::Output o;
    o.name = name;
    o.sizes = v.info.sizes;
    if (v.in_arena) {
      o.buffer = v.buffer;
      p.buffers[static_cast<size_t>(v.buffer)].last = INT_MAX;
      o.src = memory(v.md, cpu_engine(), DNNL_MEMORY_NONE);
      p.attach(o.src, v.buffer);
      o.dst = memory(plain_desc(o.sizes), cpu_engine(), DNNL_MEMORY_NONE);
      o.reorder.emplace(dnnl::reorder::primitive_desc(o.src, o.dst, scratchpad_attr()));
      o.args = {{DNNL_ARG_FROM, o.src}, {DNNL_ARG_TO, o.dst}};
      p.use_scratchpad(*o.reorder, o.args);
    } else {
      o.slot = v.slot;
      p.slot_last[static_cast<size_t>(v.slot)] = INT_MAX;
    }
    p.outputs.push_back(std::move(o));
  }
  p.first_result = p.collect(p.building);
  p.compiling = false;
  p.scratch.clear();
  p.building.clear();
  p.plan_arena();
}

Program::~Program() = default;

const ProgramStats& Program::stats() const { return impl_->stats; }

std::map<std::string, at::Tensor> Program::take_first_result() { return std::move(impl_->first_result); }

std::map<std::string, at::Tensor> Program::run(const std::map<std::string, at::Tensor>& inputs,
                                               std::vector<StepTime>* profile) {
  Impl& p = *impl_;
  at::internal::lazy_init_num_threads();
  std::vector<at::Tensor> tensors(static_cast<size_t>(p.slots));
  for (const auto& [name, slot] : p.input_slots) tensors[static_cast<size_t>(slot)] = inputs.at(name).contiguous();
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const auto t0 = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    p.execute(p.steps[i], tensors, [&](int b) { return p.address(b); });
    if (profile) {
      const Impl::Step& s = p.steps[i];
      profile->push_back({s.name, s.op, s.kernel,
                          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()});
    }
    for (size_t slot = 0; slot < tensors.size(); ++slot) {
      if (p.slot_last[slot] == static_cast<int>(i)) tensors[slot].reset();
    }
  }
  return p.collect(tensors);
}

}  // namespace graft::exec::onednn
