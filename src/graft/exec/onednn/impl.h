// The oneDNN program compiler's shared state (internal to exec/onednn): the helpers every
// primitive family uses, the weight cache, and Program::Impl, whose node handlers live one file
// per primitive family (conv.cc, pool.cc, eltwise.cc, norm.cc, matmul.cc, concat.cc, layout.cc)
// and whose planning, binding, arena and run loop live in program.cc.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graft/core/error.h"
#include "graft/exec/onednn/native.h"
#include "graft/exec/onednn/program.h"
#include "graft/exec/passes/passes.h"

namespace graft::exec::onednn {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

dnnl::engine& cpu_engine();
memory::dims to_dims(const std::vector<int64_t>& v);
// Attributes for every primitive a program keeps: its scratchpad is the program's (user mode).
// In oneDNN's default mode a primitive's scratchpad is the creating thread's, sized when the
// primitive is made; a program made on one thread and run on another (a server's worker) would
// run some primitives (Winograd convolutions) on a scratchpad of the wrong size.
dnnl::primitive_attr scratchpad_attr();
// The implementation oneDNN chose, as DNNL_VERBOSE names it ("brgconv:avx512_core").
std::string impl_name(const dnnl::primitive& prim);
std::vector<int64_t> to_sizes(const memory::desc& md);
memory::desc plain_desc(const std::vector<int64_t>& sizes);
std::vector<int64_t> ints_or(const ir::Node& n, const char* name, std::vector<int64_t> fallback);
// Begin and end pads of a 2-D window op, ONNX's auto_pad resolved for the input's sizes.
bool window_pads(const ir::Node& n, const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                 const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                 memory::dims* begin, memory::dims* end);

// The layout for a 4-D operand of sizes `sizes` broadcast against `full` (sizes `full_sizes`):
// `full`'s own format when that is nhwc or blocked (oneDNN's JIT binary kernels want both
// alike; a plain [N, C, 1, 1] beside a blocked tensor takes the reference kernel), else plain.
memory::desc broadcast_desc(const memory::desc& full, const std::vector<int64_t>& full_sizes,
                            const std::vector<int64_t>& sizes);

// A value's sizes and dtype.
struct ValueInfo {
  std::vector<int64_t> sizes;
  at::ScalarType dtype = at::kFloat;
};

struct Activation {
  dnnl::algorithm algorithm = dnnl::algorithm::undef;
  float alpha = 0.f, beta = 0.f;
  bool hard_sigmoid = false;  // linear(alpha, beta) then clip(0, 1)
};

// oneDNN's form of an ONNX activation; nullopt when it has none.
std::optional<Activation> activation_of(const std::string& op, const std::vector<float>& p);
void append_activation(dnnl::post_ops& po, const Activation& a);
// The same activation as graft's own kernels' epilogue; nullopt when they have none for it.
std::optional<Epilogue> epilogue_of(const Activation& a);

// `bytes` (rounded up to whole 2 MiB pages) of memory asked to be backed by transparent huge
// pages (madvise; plain pages where the kernel declines). At batch 1 a program streams all its
// weights each run (ResNet-50: 100 MB, 25,000 4 KiB pages), which evicts the TLB entries of the
// activations, so every step's reads began with page walks: ResNet-50's max pooling 0.10 ms in
// the model against 0.03 alone, its input reorder 0.06 against 0.02. Weights and the arena on
// 2 MiB pages need a few hundred entries in all.
at::Tensor huge_page_bytes(size_t bytes);

struct WeightCache {
  std::mutex mu;
  std::map<std::string, std::vector<std::pair<memory::desc, memory>>> entries;
  // Reordered weights live in chunks of huge pages, allocated in order (huge_page_bytes).
  std::vector<at::Tensor> chunks;
  size_t chunk_used = 0;
  static constexpr size_t kChunkBytes = size_t{32} << 20;

  void* allocate(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (chunks.empty() || static_cast<size_t>(chunks.back().numel()) - chunk_used < bytes) {
      chunks.push_back(huge_page_bytes(std::max(bytes, kChunkBytes)));
      chunk_used = 0;
    }
    void* p = static_cast<char*>(chunks.back().data_ptr()) + chunk_used;
    chunk_used += bytes;
    return p;
  }

  // `w` reordered into `want`, made once per (initializer, layout).
  memory get(const std::string& name, const at::Tensor& w, const memory::desc& plain,
             const memory::desc& want, dnnl::stream& stream) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [md, mem] : entries[name]) {
      if (md == want) return mem;
    }
    at::Tensor src = w.contiguous();
    memory user(plain, cpu_engine(), src.data_ptr());
    memory out(want, cpu_engine(), allocate(want.get_size()));
    dnnl::reorder(user, out).execute(stream, user, out);
    stream.wait();
    entries[name].emplace_back(want, out);
    return out;
  }
};

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
    // A step of graft's own (a loop oneDNN has no fast kernel for), run instead of `prim`; it
    // reads and writes through `args`, whose memory objects the arena points at their buffers.
    std::function<void(const Step&)> native;
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
    // A channel prefix of a wider nhwc buffer that other values share (a dense block's concat,
    // see ConcatGroup): its channels are strided, and it is never written in place.
    bool view = false;
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
  std::set<size_t> absorbed;  // nodes computed as another node's post-op
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

  int new_buffer(const memory::desc& md);

  // `mem` will live in arena buffer `buffer`, `offset` bytes in (meanwhile in its scratch
  // buffer).
  void attach(const memory& mem, int buffer, size_t offset = 0);

  void push(Step step);

  size_t current_node = 0;  // the node being compiled

  // One scratchpad for all steps (they run one at a time), as large as the largest needs.
  at::Tensor scratchpad;
  std::vector<memory> scratchpad_users;

  void use_scratchpad(const dnnl::primitive& prim, std::unordered_map<int, memory>& args);

  int new_slot();

  // Runs one step; `tensors`: the run's tensors by slot; `address`: an arena buffer's memory.
  template <typename Address>
  void execute(Step& s, std::vector<at::Tensor>& tensors, Address address) {
    if (s.native) {
      s.native(s);
      return;
    }
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

  bool is_f32(const std::string& name, size_t rank) const;
  // A float value of rank 1 to 5 (one oneDNN can describe).
  bool is_f32(const std::string& name) const;

  // Binds `arg` of `step` to value `name` in layout `want`, reordering (once per layout) when
  // the value lives in another one.
  void bind(Step& step, int arg, const std::string& name, const memory::desc& want, bool read = true);

  // Pushes `s` (a primitive or native step) to read and write arena buffer `buffer` (layout
  // `md`) in place, as its SRC and DST.
  void push_in_place(Step s, int buffer, const memory::desc& md);
  // A step applying eltwise `pd` to arena buffer `buffer` in place (an activation oneDNN would
  // not take as a post-op).
  void eltwise_in_place(const dnnl::eltwise_forward::primitive_desc& pd, int buffer);

  // A reorder step writing value `name` into `buffer` in layout `want`.
  void reorder_into(const std::string& name, const memory::desc& want, int buffer);

  void define(const std::string& name, const memory::desc& md, int buffer);

  const at::Tensor* initializer(const std::string& name) const;

  bool last_use_here(const std::string& name, size_t node) const;

  // Binds initializer `name` (`w`, laid out as `plain`) reordered once into `want`, and the
  // bias `bias` (`bias_md`) when there is one.
  void bind_weights(Step& s, const std::string& name, const at::Tensor& w, const memory::desc& plain,
                    const memory::desc& want, const at::Tensor* bias, const memory::desc& bias_md);

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
    // 1x1, ungrouped, unpadded, any stride (ResNet's strided downsample too).
    bool one_by_one() const {
      return kernel == std::vector<int64_t>{1, 1} && group == 1 && pad_l == memory::dims{0, 0} &&
             pad_r == memory::dims{0, 0};
    }
    bool pointwise() const { return one_by_one() && strides == std::vector<int64_t>{1, 1}; }
    int64_t output_bytes() const { return y[0] * y[1] * y[2] * y[3] * static_cast<int64_t>(sizeof(float)); }
    bool depthwise() const { return group > 1 && group == x[1] && group == y[1]; }

    // Winograd (F(2x2,3x3) or F(4x4,3x3), oneDNN's pick) for 3x3 stride-1 convolutions: 1.5-2.5x
    // fewer multiplications than direct ones, but it works in blocked layouts (usually a reorder
    // either side) and its transformed weights are up to 4x larger, each used once per 4x4
    // output tile. So only where it pays: enough tiles (N * ceil(H/4) * ceil(W/4) >= 32; at
    // batch 1, 28x28 and larger; 14x14 below) that the weights are not merely streamed from
    // memory (the hybrid's adapter, 256 -> 1088 at 17x17, 25 tiles: 4.7 ms against 3.7
    // direct), and enough channels (in x out / (in + out) >= 24: transforms grow with in + out, products with
    // in x out). Thinner ones (>= 16) pay only with thousands of tiles, where oneDNN picks
    // F(4x4,3x3): InceptionResNetV2's 32 -> 32 and 32 -> 48 at 35x35, batch 32: 1.3 and 1.6 ms
    // against 1.9 and 2.7 direct; Inception v3 at batch 32: -6 %; at batch 1, with F(2x2,3x3),
    // no gain and reorders around them. Results differ from direct convolution's by rounding
    // (~2e-6 of the output's magnitude).
    bool winograd_pays() const {
      const double channel_ratio = static_cast<double>(x[1] * y[1]) / static_cast<double>(x[1] + y[1]);
      const int64_t tiles = y[0] * ((y[2] + 3) / 4) * ((y[3] + 3) / 4);
      // A wide input for a thin output (DenseNet's 128 -> 32 growth convolutions): the input
      // transform outweighs the saving, and the blocked output needs reorders into the NHWC
      // concat after it (DenseNet-121 at batch 8: 196 -> 169 ms without).
      if (y[1] <= 32 && x[1] >= 4 * y[1]) return false;
      // Fewer tiles pay where oneDNN's F(2x2,3x3) covers the map exactly (even sides) and the
      // convolution is large: ResNet's and VGG's 14x14 stages at batch 1 (256 -> 256, 231 MFLOP:
      // 0.38 against 0.50 ms with the weights cold in a probe; ResNet-18 -8 %, VGG-11 -9 %,
      // Wide-ResNet-50 -6 %, ResNet-50 -1.5 % in interleaved runs). Not 8x8 (Inception v3's
      // 448 -> 384: +12 % with the reorders around it) nor odd sides (17x17: oneDNN picks
      // F(4x4,3x3), whose 4x larger weights lose).
      const double macs = static_cast<double>(y[0] * y[2] * y[3]) * static_cast<double>(x[1] * y[1]) * 9;
      const bool few_tiles_pay = y[2] % 2 == 0 && y[3] % 2 == 0 && y[2] >= 14 && y[3] >= 14 && macs >= 75e6;
      return ((channel_ratio >= 24 && (tiles >= 32 || few_tiles_pay)) || (channel_ratio >= 16 && tiles >= 2048)) &&
             group == 1 && kernel == std::vector<int64_t>{3, 3} && strides == std::vector<int64_t>{1, 1} &&
             dilations == std::vector<int64_t>{1, 1};
    }
    // graft's own Winograd F(2x2,3x3) (conv_winograd: nhwc in and out, so no reorders around
    // it; the products as one batched oneDNN matmul) where oneDNN's does not pay: the small maps
    // of batch 1, odd sides (17x17, 13x13: oneDNN takes only F(4x4,3x3) there, whose weights
    // are 4x larger) and 14x14 below winograd_pays()'s size. Cold-weight probes at batch 1,
    // against the direct kernel: the hybrid's adapter 256 -> 1088 at 17x17 2.3 against 3.3 ms,
    // 256 -> 288 at 17x17 0.60 / 0.83, AlexNet's 13x13 layers 0.38-0.56 / 0.46-0.69, GoogLeNet's
    // 14x14 ones 0.14-0.29 / 0.19-0.43, Inception v3's 448 -> 384 at 8x8 0.43 / 0.55. Not thin
    // ones (32 -> 64 at 147x147: 2.3 / 1.8; 128 -> 32: 0.61 / 0.57) nor 7x7 at batch 1 (16 tiles
    // computing 64 pixels for 49, weights 16/9 as large: 512 -> 512 1.5 / 0.8). It also takes
    // over oneDNN's F(2x2,3x3) on 14x14 maps at batch 1 up to 256 -> 256 (ResNet-50's third
    // stage: 1.52 against 1.88 ms + 0.08 of reorders for its five), not wider (VGG-11's 512 ->
    // 512: 1.73 against 1.31-1.60: its 17 MB of transformed weights bound both, oneDNN's kernel
    // streams them faster). Only ReLU, leaky ReLU and clip as the activation, no residual sum.
    bool own_winograd_pays() const {
      if (group != 1 || kernel != std::vector<int64_t>{3, 3} || strides != std::vector<int64_t>{1, 1} ||
          dilations != std::vector<int64_t>{1, 1} || pad_l != memory::dims{1, 1} || pad_r != memory::dims{1, 1} ||
          std::min(x[1], y[1]) < 64 || !z.empty() || !fast_winograd()) {
        return false;
      }
      if (act) {  // ReLU, leaky ReLU and clip (graft's epilogue has more, not measured here)
        const std::optional<Epilogue> e = epilogue_of(*act);
        if (!e || (e->kind != Epilogue::kRelu && e->kind != Epilogue::kLinear)) return false;
      }
      if (winograd_pays()) return y[0] * ((y[2] + 3) / 4) * ((y[3] + 3) / 4) < 32 && x[1] * y[1] <= 256 * 256;
      const int64_t tiles = winograd_tiles(y[0], y[2], y[3]);
      const bool even = y[2] % 2 == 0 && y[3] % 2 == 0;
      return tiles >= 32 || (even && tiles >= 16);
    }
    // oneDNN's Winograd: where it pays and graft's own does not take the convolution.
    bool onednn_winograd() const { return winograd_pays() && !own_winograd_pays(); }

    // graft's own depthwise kernel (native.h) in place of oneDNN's nhwc one: 5x5 and 7x7
    // filters at batch 1 on maps of at least 28x28 and inputs up to 2 MiB. In the models
    // (profiles, 2 threads, own / brdgmm_dw): MNASNet's 72 channels at 56x56 stride 2 0.019 /
    // 0.025 ms, 120 at 28x28 0.024 / 0.032; MobileNetV3-large's 0.020-0.023 / 0.027-0.033;
    // ConvNeXt's 7x7 96 at 56x56 0.09 / 0.15, 192 at 28x28 0.054 / 0.078. Not on smaller maps
    // (14x14: as fast, MNASNet's 480 channels 0.027 / 0.027; 7x7: slower, ConvNeXt's 768
    // 0.035 / 0.026), not 3x3 (slower in every model tried: MNASNet's 32 channels at 112x112
    // 0.106 / 0.060), not larger batches, whose inputs come from beyond L2 (a probe, 240
    // channels 5x5 at 38x38, batch 8: 2.4 / 1.0 ms).
    // Activations: none, ReLU, leaky ReLU, clip, HardSwish, SiLU.
    bool own_depthwise_pays() const {
      if (!depthwise() || y[0] != 1 || kernel[0] != kernel[1] || (kernel[0] != 5 && kernel[0] != 7) ||
          strides[0] != strides[1] || !depthwise_kernel_supported(kernel[0], strides[0]) ||
          dilations != std::vector<int64_t>{1, 1} || !z.empty() || !fast_depthwise()) {
        return false;
      }
      if (x[2] * x[3] < 28 * 28 || x[1] * x[2] * x[3] * static_cast<int64_t>(sizeof(float)) > (int64_t{2} << 20)) {
        return false;
      }
      return !act || epilogue_of(*act).has_value();
    }

    // graft's own kernel for grouped convolutions of 16-channel groups (RegNet's, ResNeXt's
    // third stage; native.h) in place of oneDNN's nhwc one: 3x3 stride 2 on inputs of at least
    // 25088 pixels (two samples at 112x112, eight at 56x56), or of at least 512 channels and
    // 1 MiB a sample. In the models (profiles, 2 threads, own / oneDNN's jit): RegNetY-800MF's
    // first (64 channels in 4 groups at 112x112) at batch 8 1.9 / 3.8 ms, at batch 2 0.36 /
    // 0.61; RegNetX-400MF's first at batch 8 0.82 / 1.68, its second (64 at 56x56) 0.36 / 0.54;
    // ResNeXt-50's 512 channels in 32 groups at 28x28 (1.6 MB a sample) at batch 8 1.30 / 3.38,
    // at batch 1 0.135 / 0.237. Not stride 1 nor smaller or narrower inputs, where oneDNN's is as
    // fast or 10-30 % faster (its 3x3s at 14x14, batch 8: 0.145 / 0.116; RegNetX's first at
    // batch 1, 32 channels at 112x112: 0.14 / 0.11; its 160 channels at 28x28, batch 8: 0.22 /
    // 0.19; RegNetY's 784 at 14x14: mixed).
    bool own_grouped16_pays() const {
      if (group < 2 || depthwise() || x[1] != 16 * group || y[1] != 16 * group || kernel[0] != kernel[1] ||
          strides != std::vector<int64_t>{2, 2} || !grouped16_kernel_supported(kernel[0], strides[0]) ||
          dilations != std::vector<int64_t>{1, 1} || !z.empty() || !fast_depthwise()) {
        return false;
      }
      const int64_t sample_bytes = x[1] * x[2] * x[3] * static_cast<int64_t>(sizeof(float));
      const bool wide_sample = x[1] >= 512 && sample_bytes >= (int64_t{1} << 20);
      if (x[0] * x[2] * x[3] < 2 * 112 * 112 && !wide_sample) return false;
      return !act || epilogue_of(*act).has_value();
    }
  };

  static bool is_conv(const ir::Node& n) {
    return (n.domain.empty() && n.op_type == "Conv") ||
           (n.domain == passes::kDomain && n.op_type == passes::kFusedConv);
  }

  std::optional<ConvGeometry> conv_geometry(const ir::Node& n, const std::vector<int64_t>& x) const;

  // The one node reading value `name`, or nullptr (several readers, none, or a graph output).
  const ir::Node* sole_reader(const std::string& name, size_t* index = nullptr) const;


  // Depthwise post-op fusion. A pointwise convolution whose only reader is a 3x3 depthwise one
  // (MobileNet's separable blocks) can compute both in one oneDNN primitive that keeps the
  // intermediate in cache, row band by row band, instead of writing it out and reading it back.
  // oneDNN 2.6 fuses only in the blocked nChw16c layout (in NHWC it runs the two one after the
  // other), and only pays where the intermediate would not stay in cache anyway: at >= 16 MiB,
  // half this machine's 32 MiB L3, which the pair's input and output share (MobileNetV1's first
  // three blocks at batch 32: 23.7 ms against 28.1; MNASNet's 16 -> 48 at 112x112, 19 MB at
  // batch 8: -6 to -9 % for the model, MobileNetV3-large -4 %; at batch 1 fusion was slower).
  static constexpr int64_t kDwFusionBytes = int64_t{16} << 20;

  // Residual sums on large maps. oneDNN 2.6's NHWC 1x1 kernel (brgconv_1x1) adds a residual
  // (the sum post-op) at a high cost once the output leaves the caches: ResNet-50's 64 -> 256 at
  // 56x56, batch 8 (26 MB), 2.0 ms without the sum and 3.6-4.0 with it; its nChw16c kernel
  // (jit_1x1) 1.9 and 2.1-2.2 in a probe; 256 -> 1024 at 14x14, batch 8 (6.4 MB): 2.1 against
  // 1.8; at batch 1 (3.2 and 0.8 MB) the two cost the same. So a pointwise convolution with a
  // residual whose output is >= kBlockedSumBytes runs in nChw16c when its input or its residual
  // already is (a Winograd output; ResNet's bottlenecks), and a convolution making the residual
  // of one whose input is nChw16c writes nChw16c for it. ResNet-50 at batch 8: -5 to -7 %.
  static constexpr int64_t kBlockedSumBytes = int64_t{4} << 20;
  // Whether value `name` (of `sizes`) lives in nChw16c, and is not a channel-prefix view.
  bool in_nchw16c(const std::string& name, const std::vector<int64_t>& sizes) const;
  // Whether convolution `g`, reading value `x_name`, sums its residual in nChw16c (above).
  bool blocked_sum(const ConvGeometry& g, const std::string& x_name) const;
  // Whether value `name` is the residual of a convolution that sums it in nChw16c.
  bool feeds_blocked_sum(const std::string& name) const;

  struct DwPartner {
    size_t node;
    ConvGeometry geometry;
  };


  // The depthwise node fused into pointwise convolution `n` (geometry `pw`), or nullopt.
  std::optional<DwPartner> dw_partner(const ir::Node& n, const ConvGeometry& pw) const;

  // Whether value `name` (sizes `x`) feeds a depthwise-fused pair, directly or through
  // depthwise and pointwise convolutions: its producer should then write nChw16c, saving a
  // reorder.
  bool feeds_dw_fusion(const std::string& name, const std::vector<int64_t>& x) const;

  // Whether some convolution reading value `name` (sizes `x`) runs Winograd.
  bool read_by_winograd(const std::string& name, const std::vector<int64_t>& x) const;

  // Whether value `name` (sizes `x`) is read only by a convolution that runs Winograd.
  bool feeds_winograd(const std::string& name, const std::vector<int64_t>& x) const;

  bool conv(size_t index);

  // Squeeze-excitation's channel scaling folded into the pointwise convolution after it:
  // conv(x * s) = conv'(x) with conv' weights W[o, i] * s[n, i], computed each run per sample
  // (O x I products, against the Mul's H x W x I). Where the weights are the smaller of the two
  // (EfficientNet's and MobileNetV3's early blocks: the Mul of a 112x112x32 map against 16x32
  // weights), Mul node `index` is recorded here and computes nothing; the convolution reading
  // its output then reads x. Keyed by the Mul's output.
  struct ScaledInput {
    std::string x, scale;
    size_t mul = 0;  // the Mul node
  };
  std::unordered_map<std::string, ScaledInput> scaled_inputs;
  std::set<size_t> unscaled;  // Mul nodes whose convolution declined: they run as binary ops
  static constexpr int64_t kScaledMinimum = int64_t{1} << 17;  // elements of one sample's Mul
  bool scale_into_weights(size_t index);
  // Convolution `index` (geometry `g`, 1x1) on `x` scaled per sample and channel by `in`,
  // batch by batch-1 primitive; false (nothing changed) when oneDNN declines.
  bool conv_scaled(size_t index, const ConvGeometry& g, const ScaledInput& in);
  // SiLU (swish with alpha 1) on a value of `sizes` as graft's own step after its producer
  // rather than as oneDNN's post-op (native.h): twice as fast, worth a step of its own from
  // kNativeSiluMinimum values (EfficientNet-B3's 24 -> 144 expansion at 150x150: 1.10 ms with
  // the post-op, 0.48 + 0.27 apart; 40 -> 240 at 38x38: 0.126 against 0.069 + 0.030).
  static constexpr int64_t kNativeSiluMinimum = 16384;
  static bool native_silu_pays(const Activation& act, const std::vector<int64_t>& sizes);
  // An in-place SiLU step over arena buffer `buffer` (layout `md`).
  void silu_step(int buffer, const memory::desc& md);
  // The buffer a convolution of node `index` writing layout `md` sums into: residual `z`'s own
  // when this is its last use (and no other value shares it), else a copy of it.
  int sum_destination(size_t index, const std::string& z, const memory::desc& md);

  // Pointwise convolution `index` (geometry `pw`) with its depthwise partner as a post-op, both
  // in nChw16c; false (having changed nothing) when oneDNN declines.
  bool conv_with_dw(size_t index, const ConvGeometry& pw, const DwPartner& partner);
  // A convolution as graft's own Winograd F(2x2,3x3) (ConvGeometry::own_winograd_pays).
  bool conv_winograd(size_t index, const ConvGeometry& g);
  // A depthwise convolution as graft's own kernel (ConvGeometry::own_depthwise_pays); false
  // (nothing changed) when its input is not an nhwc arena buffer.
  bool conv_depthwise(size_t index, const ConvGeometry& g);
  // A grouped convolution of 16-channel groups as graft's own kernel
  // (ConvGeometry::own_grouped16_pays); false (nothing changed) as conv_depthwise.
  bool conv_grouped16(size_t index, const ConvGeometry& g);
  // Their common part: a step running `run` on the nhwc input with the weights packed once by
  // `pack` (`packed_size` floats), the bias and the activation as an epilogue.
  using NativeConv = void (*)(const float*, const DepthwiseShape&, const float*, const float*, const Epilogue&, float*);
  bool conv_native(size_t index, const ConvGeometry& g, const char* kernel_name, int64_t packed_size,
                   const std::function<void(const float*, float*)>& pack, NativeConv run);

  // ReduceMean over the two spatial axes of a 4-D tensor: global average pooling. Its keepdims,
  // or nullopt. (Axes as an attribute, opsets up to 17, as the reference kernel reads them.)
  std::optional<bool> spatial_mean(const ir::Node& n) const;

  bool pool(size_t index);

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
  bool pad(size_t index);

  // Softmax over the last axis of a 2-D tensor (a classifier's): the same for every opset.
  bool softmax(size_t index);

  // Resize, linear, with half-pixel coordinates (oneDNN's resampling: source coordinate
  // (o + 0.5) * in / out - 0.5, clamped at the edges), of the two spatial axes of a 4-D tensor
  // whose output size is known when compiling.
  bool resize(size_t index);

  // Node `n` as a oneDNN activation, or nullopt.
  std::optional<Activation> node_activation(const ir::Node& n) const;
  // When value `value`'s only reader is an activation: appends it to `po` and returns the
  // reader's output and index (to mark absorbed once the primitive is made); else nullopt.
  std::optional<std::pair<std::string, size_t>> activation_after(const std::string& value, dnnl::post_ops& po) const;
  // Binds `arg` of `step` to value `name`'s plain bytes described as `md` (a reshaped view): its
  // arena buffer in plain layout (a reordered copy if need be), or its runtime tensor.
  void bind_plain(Step& step, int arg, const std::string& name, const memory::desc& md);

  bool eltwise(size_t index);

  bool binary(size_t index);

  // Gemm with constant weights, Y = A B' + C (alpha, beta 1; C a row of biases or absent): a
  // classifier. (Through ATen it would call OpenBLAS, whose own threads then spin against
  // oneDNN's OpenMP threads on the next run.)
  bool inner_product(const std::string& x, int64_t m, int64_t k, const std::string& w_name, const at::Tensor& w,
                     const memory::desc& w_plain, const at::Tensor* bias, const std::string& out,
                     const std::vector<int64_t>& y_sizes, const std::string& activation,
                     const std::vector<float>& params);
  bool gemm(size_t index);
  bool matmul(size_t index);

  bool concat(size_t index);

  // DenseNet's dense block: layer k concatenates the block's input and the k-1 layers' outputs
  // before it, so each of its Concats copies again everything the one before copied (58
  // Concats in DenseNet-121, the largest 56x56x256). Concats whose input lists are prefixes of
  // the longest one (same first input) form a group: one nhwc buffer holds the longest's
  // channels, each input is copied into its channel slice once, and each Concat is the channel
  // prefix of that buffer (a view: no step of its own). A BatchNormalization reading such a
  // view runs graft's own strided scale-shift loop (oneDNN 2.6 runs a binary or convolution
  // reading strided channels on its reference kernel); any other reader gets a dense copy.
  struct ConcatGroup {
    std::vector<int64_t> channels;      // each piece's channel count, from the graph's shapes
    int buffer = -1;                    // the shared buffer, once the first Concat made it
    std::vector<int64_t> batch_and_size;  // N, H, W of the pieces (the first piece's)
    size_t copied = 0;                  // pieces copied into the buffer so far
    size_t members_left = 0;            // Concats of the group not yet compiled
    bool broken = false;                // a piece was not as planned: Concats run as usual
  };
  std::vector<ConcatGroup> concat_groups;
  std::unordered_map<size_t, size_t> concat_group_of;  // Concat node -> its group
  // Each candidate Concat's inputs, flattened through a first input made by another Concat.
  std::unordered_map<size_t, std::vector<std::string>> concat_inputs;
  std::set<int> pinned;  // while compiling: group buffers that must outlive their views
  void plan_concat_groups(const std::vector<bool>& needed);
  bool grouped_concat(size_t index);

  // The layout a primitive reading value `name` should be made for: its own, except for a
  // strided channel-prefix view, whose dense nhwc form (bind() then makes the copy).
  memory::desc layout(const std::string& name) const;

  // Pushes `s`, writing value `name` (layout `md`) into a new buffer, which it returns.
  int emit_output(Step& s, const std::string& name, const memory::desc& md);

  // The arena buffer holding value `name` (in the arena) in plain layout: its own, or a
  // reordered copy made once.
  int plain_buffer(const std::string& name);
  // The arena buffer holding value `name` (in the arena) in layout `md`: its own, or a
  // reordered copy made once.
  int buffer_in(const std::string& name, const memory::desc& md);
  // Pushes `s` as the reorder `pd` from arena buffer `src` (read as pd's source) into a new
  // buffer (written as pd's destination), which it returns.
  int copy_step(Step s, const dnnl::reorder::primitive_desc& pd, int src);
  // Constant `t` (laid out as `plain`) as memory in layout `want`: its own bytes when that is
  // `plain`, else reordered once (cached under `name`).
  memory constant_memory(const std::string& name, const at::Tensor& t, const memory::desc& plain,
                         const memory::desc& want);

  // Whether a value other than `name` lives in (or has a copy in) arena buffer `buffer`.
  bool shared(int buffer, const std::string& name) const;

  // Flatten, and Reshape to a constant shape, of a float tensor in the arena: its plain bytes
  // under another shape (no step; a copy only if the value is in a blocked layout).
  // A Flatten's or Reshape's output sizes for input sizes `x`, or nullopt.
  std::optional<std::vector<int64_t>> reshaped(const ir::Node& n, const std::vector<int64_t>& x) const;
  // Node `index` evaluated while compiling, when its inputs are constants (or it is a Shape):
  // its outputs become constants; false (nothing changed) otherwise.
  bool fold(size_t index);
  std::unordered_map<std::string, at::Tensor> constants;  // what fold() computed
  bool alias(size_t index);
  bool channel_shuffle(size_t index);
  bool slice(size_t index);
  bool transpose(size_t index);
  bool batch_norm(size_t index);
  bool strided_scale_shift(size_t index, const at::Tensor& scale, const at::Tensor& shift,
                           const std::optional<std::pair<std::string, size_t>>& relu);
  bool layer_norm(size_t index);

  // Any node, by its reference kernel on plain tensors.
  void reference(size_t index);

  // Read by a needed node, or requested.
  bool used(const std::string& name) const { return last_node_use.count(name) || wanted.count(name); }

  std::map<std::string, at::Tensor> first_result;

  // The requested outputs, as plain tensors of their own.
  std::map<std::string, at::Tensor> collect(const std::vector<at::Tensor>& tensors);

  // While compiling: the scratch memory and first-run tensors of values node `index` read last.
  void forget_dead_inputs(size_t index);

  // Memory objects waiting for their arena buffer's address.
  struct Pending {
    memory mem;
    int buffer;
    size_t offset;
  };
  std::vector<Pending> pending_;

  // Assigns arena buffers to physical buffers (best fit among the free ones) and points every
  // memory object at its buffer.
  void plan_arena();

  void* address(int buffer) const;
};

}  // namespace graft::exec::onednn
