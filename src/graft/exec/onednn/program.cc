// The program compiler: it walks the graph, asks each primitive family to serve a node (else
// runs its reference kernel), binds values in the layouts primitives choose (reordering once per
// layout), plans the arena from buffer lifetimes, and runs the steps.
#include "graft/exec/onednn/program.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <climits>
#include <cstring>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

int Program::Impl::new_buffer(const memory::desc& md) {
  buffers.push_back({md.get_size(), -1, -1, 0});
  scratch.push_back(at::empty({static_cast<int64_t>(std::max<size_t>(md.get_size(), 1))}, at::kByte));
  return static_cast<int>(buffers.size()) - 1;
}

void Program::Impl::attach(const memory& mem, int buffer, size_t offset) {
  pending_.push_back({mem, buffer, offset});
  const_cast<memory&>(mem).set_data_handle(static_cast<char*>(scratch[static_cast<size_t>(buffer)].data_ptr()) + offset);
}

void Program::Impl::push(Step step) {
  const int index = static_cast<int>(steps.size());
  if (step.op.empty()) {  // the node's step; a name given (a fused "+Relu") is kept
    const ir::Node& n = graph.nodes[current_node];
    if (step.name.empty()) step.name = n.name.empty() ? n.outputs.front() : n.name;
    step.op = (n.domain.empty() ? "" : n.domain + ".") + n.op_type;
  }
  if (step.native) {
    if (step.kernel.empty()) step.kernel = "graft";
  } else {
    step.kernel = step.primitive ? impl_name(step.prim) : "aten";
    if (step.kernel.rfind("ref", 0) == 0) stats.reference_kernel_ops[step.op]++;
    if (step.primitive) use_scratchpad(step.prim, step.args);
  }
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

void Program::Impl::use_scratchpad(const dnnl::primitive& prim, std::unordered_map<int, memory>& args) {
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

int Program::Impl::new_slot() {
  slot_last.push_back(-1);
  building.emplace_back();
  return slots++;
}

// Binds `arg` of `step` to value `name` in layout `want`, reordering (once per layout) when
// the value lives in another one.
void Program::Impl::bind(Step& step, int arg, const std::string& name, const memory::desc& want, bool read) {
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
void Program::Impl::bind_plain(Step& step, int arg, const std::string& name, const memory::desc& md) {
  Value& v = values.at(name);
  step.args[arg] = memory(md, cpu_engine(), DNNL_MEMORY_NONE);
  if (v.in_arena) {
    const int buffer = plain_buffer(name);
    step.reads.push_back(buffer);
    attach(step.args[arg], buffer);
  } else {
    step.slot_args.emplace_back(step.args[arg], v.slot);
  }
}

void Program::Impl::reorder_into(const std::string& name, const memory::desc& want, int buffer) {
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

void Program::Impl::push_in_place(Step s, int buffer, const memory::desc& md) {
  s.args[DNNL_ARG_SRC] = memory(md, cpu_engine(), DNNL_MEMORY_NONE);
  s.args[DNNL_ARG_DST] = s.args[DNNL_ARG_SRC];
  attach(s.args[DNNL_ARG_SRC], buffer);
  s.reads.push_back(buffer);
  s.writes.push_back(buffer);
  push(std::move(s));
}

void Program::Impl::eltwise_in_place(const dnnl::eltwise_forward::primitive_desc& pd, int buffer) {
  Step s;
  s.prim = dnnl::eltwise_forward(pd);
  push_in_place(std::move(s), buffer, pd.src_desc());
}

memory::desc Program::Impl::layout(const std::string& name) const {
  const Value& v = values.at(name);
  if (!v.view) return v.md;
  return memory::desc(to_dims(v.info.sizes), DataType::f32, Tag::nhwc);
}

void Program::Impl::define(const std::string& name, const memory::desc& md, int buffer) {
  Value v;
  v.in_arena = true;
  v.buffer = buffer;
  v.md = md;
  v.info = {to_sizes(md), at::kFloat};
  values[name] = std::move(v);
}

// Binds initializer `name` (`w`, laid out as `plain`) reordered once into `want`, and the
// bias `bias` (`bias_md`) when there is one.
void Program::Impl::bind_weights(Step& s, const std::string& name, const at::Tensor& w, const memory::desc& plain,
                  const memory::desc& want, const at::Tensor* bias, const memory::desc& bias_md) {
  s.args[DNNL_ARG_WEIGHTS] = weights.get(name, w, plain, want, stream);
  if (bias == nullptr) return;
  keep_alive.push_back(bias->contiguous());
  s.args[DNNL_ARG_BIAS] = memory(bias_md, cpu_engine(), keep_alive.back().data_ptr());
}

// The one node reading value `name`, or nullptr (several readers, none, or a graph output).
const ir::Node* Program::Impl::sole_reader(const std::string& name, size_t* index) const {
  auto it = readers.find(name);
  if (wanted.count(name) || it == readers.end() || it->second.size() != 1) return nullptr;
  if (index != nullptr) *index = it->second.front();
  return &graph.nodes[it->second.front()];
}

// Pushes `s`, writing value `name` (layout `md`) into a new buffer, which it returns.
int Program::Impl::emit_output(Step& s, const std::string& name, const memory::desc& md) {
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
int Program::Impl::buffer_in(const std::string& name, const memory::desc& md) {
  Value& v = values.at(name);
  if (v.md == md) return v.buffer;
  for (const auto& [copy_md, b] : v.copies) {
    if (copy_md == md) return b;
  }
  const int buffer = new_buffer(md);
  reorder_into(name, md, buffer);
  v.copies.emplace_back(md, buffer);
  return buffer;
}

int Program::Impl::plain_buffer(const std::string& name) {
  const Value& v = values.at(name);
  const auto& x = v.info.sizes;
  // [N, C, 1, 1] in nhwc is the same bytes as plain.
  if (x.size() == 4 && x[2] * x[3] == 1 && v.md == memory::desc(to_dims(x), DataType::f32, Tag::nhwc)) {
    return v.buffer;
  }
  return buffer_in(name, plain_desc(x));
}

memory Program::Impl::constant_memory(const std::string& name, const at::Tensor& t, const memory::desc& plain,
                                      const memory::desc& want) {
  keep_alive.push_back(t.contiguous());
  if (want == plain) return memory(want, cpu_engine(), keep_alive.back().data_ptr());
  return weights.get(name, keep_alive.back(), plain, want, stream);
}

int Program::Impl::copy_step(Step s, const dnnl::reorder::primitive_desc& pd, int src) {
  s.prim = dnnl::reorder(pd);
  s.args[DNNL_ARG_FROM] = memory(pd.src_desc(), cpu_engine(), DNNL_MEMORY_NONE);
  attach(s.args[DNNL_ARG_FROM], src);
  s.reads.push_back(src);
  const int dst = new_buffer(pd.dst_desc());
  s.args[DNNL_ARG_TO] = memory(pd.dst_desc(), cpu_engine(), DNNL_MEMORY_NONE);
  attach(s.args[DNNL_ARG_TO], dst);
  s.writes.push_back(dst);
  push(std::move(s));
  return dst;
}

// Whether a value other than `name` lives in (or has a copy in) arena buffer `buffer`.
bool Program::Impl::shared(int buffer, const std::string& name) const {
  for (const auto& [other, v] : values) {
    if (other == name) continue;
    if (v.in_arena && v.buffer == buffer) return true;
    for (const auto& [md, b] : v.copies) {
      if (b == buffer) return true;
    }
  }
  return false;
}

// Any node, by its reference kernel on plain tensors.
void Program::Impl::reference(size_t index) {
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

// The requested outputs, as plain tensors of their own.
std::map<std::string, at::Tensor> Program::Impl::collect(const std::vector<at::Tensor>& tensors) {
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
void Program::Impl::forget_dead_inputs(size_t index) {
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
      if (!live && !pinned.count(b)) scratch[static_cast<size_t>(b)] = at::Tensor();
    }
  }
}

// Assigns arena buffers to physical buffers (best fit among the free ones) and points every
// memory object at its buffer.
void Program::Impl::plan_arena() {
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
  // One block of huge pages (huge_page_bytes) for the physical buffers and the scratchpad. The
  // k-th starts on a 4 KiB boundary plus (k x 320) mod 4096 bytes, so that buffers a step reads
  // and writes together do not start at the same offset within a page, as page-aligned ones
  // would (4 KiB aliasing between their loads and stores).
  constexpr size_t kStagger = 320, kPage = 4096;
  std::vector<size_t> offsets;
  size_t end = 0;
  for (size_t p = 0; p <= sizes.size(); ++p) {
    const size_t bytes = p < sizes.size() ? std::max<size_t>(sizes[p], 1)
                                          : static_cast<size_t>(scratchpad.defined() ? scratchpad.numel() : 0);
    const size_t start = (end + kPage - 1) / kPage * kPage + (p * kStagger) % kPage;
    offsets.push_back(start);
    end = start + (bytes + 63) / 64 * 64;
  }
  const at::Tensor block = huge_page_bytes(end);
  for (size_t p = 0; p < sizes.size(); ++p) {
    arena.push_back(block.narrow(0, static_cast<int64_t>(offsets[p]), static_cast<int64_t>(std::max<size_t>(sizes[p], 1))));
    stats.arena_bytes += static_cast<int64_t>(sizes[p]);
  }
  if (scratchpad.defined()) {
    scratchpad = block.narrow(0, static_cast<int64_t>(offsets.back()), scratchpad.numel());
    for (auto& m : scratchpad_users) m.set_data_handle(scratchpad.data_ptr());
  }
  for (auto& [mem, b, offset] : pending_) mem.set_data_handle(static_cast<char*>(address(b)) + offset);
}

void* Program::Impl::address(int buffer) const {
  return arena[buffers[static_cast<size_t>(buffer)].physical].data_ptr();
}

bool Program::Impl::is_f32(const std::string& name, size_t rank) const {
  auto it = values.find(name);
  return it != values.end() && it->second.info.dtype == at::kFloat &&
         it->second.info.sizes.size() == rank;
}

bool Program::Impl::is_f32(const std::string& name) const {
  auto it = values.find(name);
  return it != values.end() && it->second.info.dtype == at::kFloat && !it->second.info.sizes.empty() &&
         it->second.info.sizes.size() <= 5;
}

const at::Tensor* Program::Impl::initializer(const std::string& name) const {
  auto it = graph.initializers.find(name);
  if (it != graph.initializers.end()) return &it->second;
  auto c = constants.find(name);
  return c == constants.end() ? nullptr : &c->second;
}

bool Program::Impl::fold(size_t index) {
  const ir::Node& n = graph.nodes[index];
  // A node without inputs (a random generator) is not a function of the shapes.
  if (n.outputs.empty() || n.inputs.empty()) return false;
  for (const auto& out : n.outputs) {
    if (wanted.count(out)) return false;  // the program's outputs are computed each run
  }
  const bool shape = n.domain.empty() && n.op_type == "Shape";
  std::vector<at::Tensor> args;
  for (const auto& in : n.inputs) {
    if (in.empty()) {
      args.emplace_back();
    } else if (const at::Tensor* c = initializer(in)) {
      args.push_back(*c);
    } else if (auto it = values.find(in); shape && it != values.end()) {
      // Shape reads only the sizes: an uninitialised tensor of them will do.
      args.push_back(at::empty(it->second.info.sizes, at::TensorOptions().dtype(it->second.info.dtype)));
    } else {
      return false;
    }
  }
  ops::RunContext ctx;
  std::vector<at::Tensor> outs;
  try {
    outs = kernels[index](args, ctx);
  } catch (const std::exception&) {
    return false;  // the node runs as usual and reports its error then
  }
  // Shape arithmetic, not data: anything large is computed each run like the rest.
  constexpr int64_t kMaxFolded = 4096;
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    if (n.outputs[k].empty() || !used(n.outputs[k])) continue;
    if (k >= outs.size() || !outs[k].defined() || outs[k].numel() > kMaxFolded) return false;
  }
  for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
    if (!n.outputs[k].empty()) constants[n.outputs[k]] = outs[k].contiguous();
  }
  return true;
}

bool Program::Impl::last_use_here(const std::string& name, size_t node) const {
  auto it = last_node_use.find(name);
  return it != last_node_use.end() && it->second == static_cast<int>(node) && !wanted.count(name);
}

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
  p.plan_concat_groups(needed);
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
    bool done = p.absorbed.count(i) > 0;  // computed by the node before it
    // Shape arithmetic on sizes fixed for this program (the batch, symbolic in the graph, is
    // known here): evaluated now, its results constants for the nodes after it.
    if (!done && p.fold(i)) {
      p.stats.folded_nodes++;
      continue;
    }
    if (!done && (n.domain.empty() || n.domain == passes::kDomain)) {
      if (Impl::is_conv(n)) {
        done = p.conv(i);
      } else if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "ReduceMean") {
        done = p.pool(i);
      } else if (op == "Relu" || op == "LeakyRelu" || op == "Clip" || op == "Sigmoid" ||
                 op == "Tanh" || op == "HardSwish" || op == "HardSigmoid" ||
                 (n.domain == passes::kDomain && (op == "Silu" || op == "Gelu"))) {
        done = p.eltwise(i);
      } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
        done = p.binary(i);
      } else if (op == "Concat") {
        done = p.concat(i);
      } else if (op == "Gemm") {
        done = p.gemm(i);
      } else if (n.domain == passes::kDomain && op == "FusedMatMul") {
        done = p.matmul(i);
      } else if (op == "Resize") {
        done = p.resize(i);
      } else if (op == "Flatten" || op == "Reshape") {
        done = p.alias(i);
      } else if (op == "Slice") {
        done = p.slice(i);
      } else if (op == "Transpose") {
        done = p.transpose(i);
      } else if (op == "BatchNormalization") {
        done = p.batch_norm(i);
      } else if (op == "LayerNormalization") {
        done = p.layer_norm(i);
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
