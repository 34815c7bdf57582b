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

}  // namespace graft::exec::onednn
