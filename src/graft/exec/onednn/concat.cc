// Channel Concat, and the shared buffer of a dense block's Concats.
#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

void Program::Impl::plan_concat_groups(const std::vector<bool>& needed) {
  // Channel Concats of 4-D values by first input, each Concat's inputs flattened through a
  // first input that is itself such a Concat (Keras's DenseNet writes x = Concatenate([x, new])
  // where PyTorch's concatenates the whole list each time: the same prefixes).
  std::map<std::string, std::vector<size_t>> by_first;
  std::unordered_map<std::string, size_t> concat_making;  // output -> Concat node
  const auto rank = [&](const std::string& name) -> size_t {
    auto it = graph.values.find(name);
    return it == graph.values.end() || !it->second.shape ? 0 : it->second.shape->size();
  };
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& n = graph.nodes[i];
    if (!needed[i] || !n.domain.empty() || n.op_type != "Concat" || n.inputs.empty() ||
        n.outputs.size() != 1) {
      continue;
    }
    const int64_t axis = n.attributes.get_int("axis", 1);
    if (rank(n.outputs[0]) != 4 || (axis != 1 && axis != -3)) continue;
    std::vector<std::string> flat;
    if (auto inner = concat_making.find(n.inputs[0]); inner != concat_making.end()) {
      flat = concat_inputs.at(inner->second);
      flat.insert(flat.end(), n.inputs.begin() + 1, n.inputs.end());
    } else {
      flat = n.inputs;
    }
    concat_making[n.outputs[0]] = i;
    by_first[flat.front()].push_back(i);
    concat_inputs[i] = std::move(flat);
  }
  for (const auto& [first, members] : by_first) {
    if (members.size() < 2) continue;
    size_t longest = members.front();
    for (size_t i : members) {
      if (concat_inputs.at(i).size() > concat_inputs.at(longest).size()) longest = i;
    }
    const std::vector<std::string>& pieces = concat_inputs.at(longest);
    bool prefixes = true;
    for (size_t i : members) {
      const auto& in = concat_inputs.at(i);
      prefixes = prefixes && std::equal(in.begin(), in.end(), pieces.begin());
    }
    ConcatGroup group;
    for (const auto& piece : pieces) {
      auto it = graph.values.find(piece);
      const bool known = !piece.empty() && initializer(piece) == nullptr &&
                         it != graph.values.end() && it->second.shape &&
                         it->second.shape->size() == 4 && (*it->second.shape)[1].known();
      if (!known) {
        prefixes = false;
        break;
      }
      group.channels.push_back((*it->second.shape)[1].value);
    }
    if (!prefixes) continue;
    group.members_left = members.size();
    for (size_t i : members) concat_group_of[i] = concat_groups.size();
    concat_groups.push_back(std::move(group));
  }
}

bool Program::Impl::grouped_concat(size_t index) {
  auto found = concat_group_of.find(index);
  if (found == concat_group_of.end()) return false;
  ConcatGroup& group = concat_groups[found->second];
  if (group.broken) return false;
  const auto broken = [&] {
    group.broken = true;
    if (group.buffer >= 0) pinned.erase(group.buffer);  // its views keep it while they live
    return false;
  };
  const ir::Node& n = graph.nodes[index];
  const std::vector<std::string>& inputs = concat_inputs.at(index);  // flattened
  // The pieces this Concat needs, each as planned: float, 4-D, the first piece's N, H, W.
  for (size_t k = group.copied; k < inputs.size(); ++k) {
    const std::string& in = inputs[k];
    if (!is_f32(in, 4)) return broken();
    const std::vector<int64_t>& x = values.at(in).info.sizes;
    if (group.batch_and_size.empty()) group.batch_and_size = {x[0], x[2], x[3]};
    if (x[1] != group.channels[k] || std::vector<int64_t>{x[0], x[2], x[3]} != group.batch_and_size) {
      return broken();
    }
  }
  const std::vector<int64_t>& nhw = group.batch_and_size;
  int64_t total = 0;
  for (int64_t c : group.channels) total += c;
  const memory::desc whole(to_dims({nhw[0], total, nhw[1], nhw[2]}), DataType::f32, Tag::nhwc);
  int64_t offset = 0;
  for (size_t k = 0; k < group.copied; ++k) offset += group.channels[k];
  std::vector<dnnl::reorder::primitive_desc> pds;
  try {
    for (size_t k = group.copied; k < inputs.size(); ++k) {
      const memory::desc part = whole.submemory_desc(to_dims({nhw[0], group.channels[k], nhw[1], nhw[2]}),
                                                     {0, offset, 0, 0});
      pds.emplace_back(cpu_engine(), values.at(inputs[k]).md, cpu_engine(), part, scratchpad_attr());
      offset += group.channels[k];
    }
  } catch (const dnnl::error&) {
    return broken();
  }
  if (group.buffer < 0) {
    group.buffer = new_buffer(whole);
    pinned.insert(group.buffer);
  }
  for (size_t k = group.copied; k < inputs.size(); ++k) {
    Step s;
    s.prim = dnnl::reorder(pds[k - group.copied]);
    s.name = inputs[k];
    s.op = "Concat";
    bind(s, DNNL_ARG_FROM, inputs[k], values.at(inputs[k]).md);
    s.args[DNNL_ARG_TO] = memory(pds[k - group.copied].dst_desc(), cpu_engine(), DNNL_MEMORY_NONE);
    attach(s.args[DNNL_ARG_TO], group.buffer);
    s.writes.push_back(group.buffer);
    push(std::move(s));
  }
  group.copied = std::max(group.copied, inputs.size());
  int64_t width = 0;
  for (size_t k = 0; k < inputs.size(); ++k) width += group.channels[k];
  const memory::desc prefix =
      width == total ? whole : whole.submemory_desc(to_dims({nhw[0], width, nhw[1], nhw[2]}), {0, 0, 0, 0});
  define(n.outputs[0], prefix, group.buffer);
  values.at(n.outputs[0]).view = true;
  // While compiling, the buffer lives as long as a value in it does, once no Concat of the
  // group is left to make a view of it.
  if (--group.members_left == 0) pinned.erase(group.buffer);
  return true;
}

bool Program::Impl::concat(size_t index) {
  if (grouped_concat(index)) return true;
  const ir::Node& n = graph.nodes[index];
  int64_t axis = n.attributes.get_int("axis", 1);
  if (axis < 0) axis += 4;
  if (axis != 1 || n.inputs.empty()) return false;
  std::vector<memory::desc> srcs;
  bool any_nhwc = false, all_nhwc = true;
  for (const auto& in : n.inputs) {
    if (in.empty() || initializer(in) != nullptr || !is_f32(in, 4)) return false;
    const Value& v = values.at(in);
    srcs.push_back(layout(in));
    const bool nhwc = srcs.back() == memory::desc(to_dims(v.info.sizes), DataType::f32, Tag::nhwc);
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
