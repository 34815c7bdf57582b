// Channel Concat.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

bool Program::Impl::concat(size_t index) {
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
  // Inputs in different layouts (a Winograd convolution's blocked output beside direct ones'
  // nhwc) would take oneDNN's slow generic concat: each input is instead reordered straight
  // into its channel slice of an nhwc output (one copy, where reordering the odd ones to nhwc
  // and then concatenating made two; SqueezeNet at batch 1: 6.61 -> 6.43 ms).
  if (any_nhwc && !all_nhwc) {
    std::vector<int64_t> y = values.at(n.inputs[0]).info.sizes;
    y[1] = 0;
    for (const auto& in : n.inputs) y[1] += values.at(in).info.sizes[1];
    const memory::desc dst_md(to_dims(y), DataType::f32, Tag::nhwc);
    std::vector<dnnl::reorder::primitive_desc> pds;
    int64_t offset = 0;
    try {
      for (const auto& in : n.inputs) {
        const std::vector<int64_t>& x = values.at(in).info.sizes;
        const memory::desc part = dst_md.submemory_desc(to_dims(x), {0, offset, 0, 0});
        pds.emplace_back(cpu_engine(), values.at(in).md, cpu_engine(), part, scratchpad_attr());
        offset += x[1];
      }
    } catch (const dnnl::error&) {
      pds.clear();
    }
    if (!pds.empty()) {
      const int dst = new_buffer(dst_md);
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        Step s;
        s.prim = dnnl::reorder(pds[k]);
        bind(s, DNNL_ARG_FROM, n.inputs[k], values.at(n.inputs[k]).md);
        s.args[DNNL_ARG_TO] = memory(pds[k].dst_desc(), cpu_engine(), DNNL_MEMORY_NONE);
        attach(s.args[DNNL_ARG_TO], dst);
        s.writes.push_back(dst);
        push(std::move(s));
      }
      define(n.outputs[0], dst_md, dst);
      return true;
    }
  }
  // (Should a slice reorder be refused: the odd ones reordered to nhwc, then concatenated.)
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

}  // namespace graft::exec::onednn
