// Cut points as dominators, frontiers, and resolving layer references.
#include <algorithm>
#include <set>
#include <unordered_map>

#include "graft/core/error.h"
#include "graft/cut/cut.h"
#include "graft/cut/closure.h"
#include "graft/ir/summary.h"

namespace graft::cut {
namespace {

int64_t bytes_per_image(const ir::Value& v) {
  auto sizes = ir::known_sizes(v.shape);
  if (!sizes) return -1;
  int64_t n = 1;
  for (size_t i = 1; i < sizes->size(); ++i) n *= (*sizes)[i];
  const int64_t element = v.dtype == 11 || v.dtype == 7 ? 8 : v.dtype == 10 || v.dtype == 16 ? 2
                          : v.dtype == 2 || v.dtype == 3 || v.dtype == 9 ? 1 : 4;
  return n * element;
}

}  // namespace

std::vector<CutPoint> cut_points(const ir::Graph& g) {
  // Vertices: 0 = virtual source, then graph inputs and node outputs in topological order, then
  // the virtual sink. Initializers and constant-only tensors are not reachable from the source.
  std::unordered_map<std::string, int> id;
  std::vector<std::string> name{""};
  std::vector<std::vector<int>> preds{{}};
  for (const auto& in : g.inputs) {
    id[in] = static_cast<int>(name.size());
    name.push_back(in);
    preds.push_back({0});
  }
  for (const auto& n : g.nodes) {
    std::vector<int> p;
    for (const auto& in : n.inputs) {
      auto it = id.find(in);
      if (!in.empty() && it != id.end()) p.push_back(it->second);
    }
    for (const auto& out : n.outputs) {
      if (out.empty()) continue;
      id[out] = static_cast<int>(name.size());
      name.push_back(out);
      preds.push_back(p);
    }
  }
  const int sink = static_cast<int>(name.size());
  name.push_back("");
  preds.emplace_back();
  for (const auto& out : g.outputs) {
    if (id.count(out)) preds[sink].push_back(id[out]);
  }

  // Cooper, Harvey and Kennedy's intersection; vertex ids are already a topological order.
  std::vector<int> idom(name.size(), -1);
  idom[0] = 0;
  for (size_t v = 1; v < name.size(); ++v) {
    int d = -1;
    for (int p : preds[v]) {
      if (idom[static_cast<size_t>(p)] < 0) continue;  // unreachable from the inputs
      if (d < 0) {
        d = p;
        continue;
      }
      int a = p, b = d;
      while (a != b) {
        while (a > b) a = idom[static_cast<size_t>(a)];
        while (b > a) b = idom[static_cast<size_t>(b)];
      }
      d = a;
    }
    idom[v] = d;
  }
  std::vector<CutPoint> points;
  if (idom[static_cast<size_t>(sink)] < 0) return points;  // no output depends on an input
  std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());
  const std::vector<bool> live = ancestors(g, g.outputs);
  std::vector<int64_t> macs(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) macs[i] = ir::node_macs(g, g.nodes[i]).value_or(0);
  const std::vector<int64_t> rows = ir::node_rows(g);
  for (int v = idom[static_cast<size_t>(sink)]; v > 0; v = idom[static_cast<size_t>(v)]) {
    const std::string& t = name[static_cast<size_t>(v)];
    const ir::Value& value = g.value(t);
    if (value.producer < 0 || outputs.count(t)) continue;
    CutPoint c;
    c.tensor = t;
    c.node = value.producer;
    c.row = rows[static_cast<size_t>(c.node)];
    c.bytes = bytes_per_image(value);
    const std::vector<bool> before = ancestors(g, {t});
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (!live[i]) continue;
      (before[i] ? c.macs_before : c.macs_after) += macs[i];
    }
    points.push_back(std::move(c));
  }
  std::reverse(points.begin(), points.end());
  return points;
}

int resolve_layer(const ir::Graph& g, const std::string& layer) {
  if (!layer.empty() && layer.size() < 10 && layer.find_first_not_of("0123456789") == std::string::npos) {
    const int64_t row = std::stoll(layer);
    if (row < static_cast<int64_t>(g.inputs.size())) {
      throw Error("row " + layer + " is the graph input '" + g.inputs[static_cast<size_t>(row)] +
                  "': cutting there leaves nothing in the head");
    }
    const int node = ir::node_at_row(g, row);
    if (node < 0) {
      const std::vector<int64_t> rows = ir::node_rows(g);
      const int64_t last = rows.empty() ? static_cast<int64_t>(g.inputs.size()) - 1 : rows.back();
      throw Error("no layer " + layer + ": the model has rows 0–" + std::to_string(last) +
                  " (see graft summary)");
    }
    return node;
  }
  const int node = g.find_node(layer);
  if (node >= 0) return node;
  std::string hint;
  if (g.has_value(layer)) hint = "; '" + layer + "' is a tensor: use tensor:" + layer;
  throw Error("no layer named '" + layer + "' (layers are summary rows or node names" + hint + ")");
}

std::vector<std::string> frontier(const ir::Graph& g, int node) {
  // Tensors that depend on no graph input (Constant nodes, an exporter's Identity aliases of
  // shared initializers, arithmetic on them) are weights, not activations: the tail carries them
  // itself, so they do not cross the cut.
  std::set<std::string> varying(g.inputs.begin(), g.inputs.end());
  std::vector<std::string> out;
  for (int i = 0; i <= node && i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[static_cast<size_t>(i)];
    if (std::none_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& in) { return varying.count(in) > 0; })) {
      continue;
    }
    for (const auto& t : n.outputs) {
      if (t.empty()) continue;
      varying.insert(t);
      const ir::Value& v = g.value(t);
      const bool used_later = !v.consumers.empty() && v.consumers.back() > node;
      if (used_later || v.is_graph_output) out.push_back(t);
    }
  }
  return out;
}

Advice advise(const ir::Graph& g, int node, const std::vector<CutPoint>& points) {
  Advice a;
  a.node = node;
  a.crossing = frontier(g, node);
  a.inputs_still_needed = leaks(g, a.crossing);
  for (const auto& p : points) {
    if (p.node <= node) a.before = p;
    if (p.node > node && !a.after) a.after = p;
  }
  a.is_cut_point = a.crossing.size() == 1 && a.inputs_still_needed.empty() &&
                   std::any_of(points.begin(), points.end(),
                               [&](const CutPoint& p) { return p.tensor == a.crossing[0]; });
  return a;
}

std::vector<std::string> resolve_cut(const ir::Graph& g, const std::string& spec) {
  std::vector<std::string> tensors;
  auto add = [&](const std::string& t) {
    if (std::find(tensors.begin(), tensors.end(), t) == tensors.end()) tensors.push_back(t);
  };
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) throw Error("empty item in cut '" + spec + "'");
    if (item.rfind("tensor:", 0) == 0) {
      const std::string t = item.substr(7);
      if (!g.has_value(t)) throw Error("no tensor named '" + t + "' in the model");
      add(t);
    } else {
      for (const auto& t : frontier(g, resolve_layer(g, item))) add(t);
    }
  }
  return tensors;
}

}  // namespace graft::cut
