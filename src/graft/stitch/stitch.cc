#include "graft/stitch/stitch.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "graft/adapt/adapter.h"
#include "graft/core/error.h"
#include "graft/core/sha256.h"
#include "graft/cut/cut.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"

namespace graft::stitch {
namespace {

// Prefixes every node, tensor and initializer name of `g` except those in `keep`.
void prefix_names(ir::Graph& g, const std::string& prefix, const std::set<std::string>& keep) {
  auto rename = [&](const std::string& n) { return n.empty() || keep.count(n) ? n : prefix + n; };
  for (auto& node : g.nodes) {
    node.name = prefix + node.name;
    for (auto& t : node.inputs) t = rename(t);
    for (auto& t : node.outputs) t = rename(t);
  }
  std::map<std::string, at::Tensor> inits;
  for (auto& [name, t] : g.initializers) inits[rename(name)] = t;
  g.initializers = std::move(inits);
  std::unordered_map<std::string, ir::Value> values;
  for (auto& [name, v] : g.values) {
    ir::Value copy = v;
    copy.name = rename(name);
    values[copy.name] = copy;
  }
  g.values = std::move(values);
  for (auto& t : g.inputs) t = rename(t);
  for (auto& t : g.outputs) t = rename(t);
  std::vector<std::string> constants;
  for (const auto& c : ir::metadata_string_list(g, ir::kMetaConstants)) constants.push_back(rename(c));
  if (!constants.empty()) ir::set_metadata_string_list(g, ir::kMetaConstants, constants);
}

std::string single_cut_tensor(const ir::Graph& a, const std::string& layer) {
  const auto cut = cut::resolve_cut(a, layer);
  if (cut.size() == 1 && cut::leaks(a, cut).empty()) return cut[0];
  std::string nearest;
  const auto points = cut::cut_points(a);
  const int node = layer.rfind("tensor:", 0) == 0 ? a.value(cut[0]).producer : cut::resolve_layer(a, layer);
  for (const auto& p : points) {
    if (p.node <= node) nearest = p.tensor;
  }
  throw Error("the head of model '" + a.name + "' must end in one tensor, but cutting at '" + layer +
              "' leaves " + std::to_string(cut.size()) + " crossing tensors" +
              (nearest.empty() ? "" : "; the nearest cut point before it is tensor:" + nearest) +
              " (graft cuts MODEL --near " + layer + ")");
}

}  // namespace

ir::Graph stitch(const ir::Graph& a_in, const std::string& layer_a, const ir::Graph& b_in,
                 const std::string& layer_b, const Options& o) {
  // One opset for the whole hybrid: bring the older model up to the newer one's.
  const int64_t opset = std::max(a_in.opset(), b_in.opset());
  ir::Graph a = a_in.opset() == opset ? a_in : ir::convert_opset(a_in, opset);
  ir::Graph b = b_in.opset() == opset ? b_in : ir::convert_opset(b_in, opset);
  ir::infer_shapes(a);
  ir::infer_shapes(b);

  const std::string source = with_context("model A", [&] { return single_cut_tensor(a, layer_a); });
  const std::vector<std::string> targets = with_context("model B", [&] { return cut::resolve_cut(b, layer_b); });
  const cut::Source src_a{o.head_path, o.head_path.empty() ? "" : sha256_file(o.head_path)};
  const cut::Source src_b{o.tail_path, o.tail_path.empty() ? "" : sha256_file(o.tail_path)};
  ir::Graph head = with_context("model A", [&] { return cut::head(a, {source}, src_a); });
  ir::Graph tail = with_context("model B", [&] { return cut::tail(b, targets, src_b); });

  const adapt::Shape3 from = adapt::shape_of(a, source);
  std::vector<adapt::Adapter> adapters;
  nlohmann::json adapter_record = nlohmann::json::array();
  for (const auto& t : targets) {
    const adapt::Target target = adapt::target_of(b, t);
    adapters.push_back(with_context("adapter to '" + t + "'", [&] { return adapt::choose(o.adapter, from, target); }));
  }

  prefix_names(head, "a/", std::set<std::string>(head.inputs.begin(), head.inputs.end()));
  prefix_names(tail, "b/", std::set<std::string>(tail.outputs.begin(), tail.outputs.end()));

  // Model-level fields and metadata (preprocessing) from A's head; opsets from both.
  ir::Graph h = ir::derived_from(head, a.name + "+" + b.name);
  h.ir_version = std::max(head.ir_version, tail.ir_version);
  for (const auto& op : tail.opset_imports) {
    auto it = std::find_if(h.opset_imports.begin(), h.opset_imports.end(),
                           [&](const ir::OpsetImport& x) { return x.domain == op.domain; });
    if (it == h.opset_imports.end()) {
      h.opset_imports.push_back(op);
    } else {
      it->version = std::max(it->version, op.version);
    }
  }
  h.inputs = head.inputs;
  h.outputs = tail.outputs;
  h.nodes = head.nodes;
  h.initializers = head.initializers;
  h.values = head.values;
  auto merge = [&](const ir::Graph& part) {
    for (const auto& [name, t] : part.initializers) {
      if (!h.initializers.emplace(name, t).second) throw Error("name collision on '" + name + "'", ErrorKind::kInternal);
    }
    for (const auto& [name, v] : part.values) h.values.emplace(name, v);
  };
  merge(tail);
  if (auto labels = b.get_metadata(ir::kMetaLabels)) h.set_metadata(ir::kMetaLabels, *labels);
  h.set_metadata(ir::kMetaRole, "hybrid");

  std::vector<std::string> trainable;
  std::string split_point = "a/" + source;
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string prefix = targets.size() == 1 ? "adapter/" : "adapter" + std::to_string(i) + "/";
    std::string split;
    const auto added = adapt::build(adapters[i], h, "a/" + source, "b/" + targets[i], prefix, o.seed + i, &split);
    trainable.insert(trainable.end(), added.begin(), added.end());
    // A bottleneck's narrow tensor is where to split only if it is the one adapter: with several
    // branches the others cross the same boundary, so the head's output stays the split point.
    if (adapters[i].split_after >= 0 && targets.size() == 1) split_point = split;
    adapter_record.push_back({{"target", targets[i]}, {"family", adapters[i].family},
                              {"spec", adapters[i].spec()}, {"params", adapters[i].params},
                              {"macs", adapters[i].macs}, {"output", "b/" + targets[i]}});
  }
  for (const auto& n : tail.nodes) h.nodes.push_back(n);

  std::vector<std::string> constants = ir::metadata_string_list(head, ir::kMetaConstants);
  for (const auto& c : ir::metadata_string_list(tail, ir::kMetaConstants)) constants.push_back(c);
  if (constants.empty()) {
    h.erase_metadata(ir::kMetaConstants);
  } else {
    ir::set_metadata_string_list(h, ir::kMetaConstants, constants);
  }
  ir::set_metadata_string_list(h, ir::kMetaTrainable, trainable);
  nlohmann::json record = {
      {"head", {{"source", o.head_path}, {"sha256", src_a.sha256}, {"model", a.name}, {"tensors", {source}},
                {"hybrid_tensors", {"a/" + source}}}},
      {"tail", {{"source", o.tail_path}, {"sha256", src_b.sha256}, {"model", b.name}, {"tensors", targets}}},
      {"adapters", adapter_record},
      {"split_point", split_point}};
  for (const auto& t : targets) record["tail"]["hybrid_tensors"].push_back("b/" + t);
  h.set_metadata(ir::kMetaCut, record.dump());
  h.reindex();
  ir::infer_shapes(h);
  return h;
}

}  // namespace graft::stitch
