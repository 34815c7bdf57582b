// graft cuts MODEL.onnx — where a model can be cut, and advice for a layer that cannot.
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/cut/cut.h"
#include "graft/ir/summary.h"

namespace graft::cli {
namespace {

struct CutsArgs {
  std::string model, near, shape;
  std::vector<std::string> input_shapes;
  bool json = false;
};

std::vector<int64_t> parse_chw(const std::string& text) {
  std::vector<int64_t> dims;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, 'x');) {
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos || std::stoll(part) <= 0) {
      throw Error("bad --shape '" + text + "': expected CxHxW, e.g. 384x8x8");
    }
    dims.push_back(std::stoll(part));
  }
  if (dims.size() != 3) throw Error("bad --shape '" + text + "': expected CxHxW, e.g. 384x8x8");
  return dims;
}

// How far a per-image shape (batch dropped) is from a CxHxW target: summed |log ratio|.
double distance(const ir::Value& v, const std::vector<int64_t>& target) {
  auto sizes = ir::known_sizes(v.shape);
  if (!sizes || sizes->size() != 4) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < 3; ++i) d += std::fabs(std::log(double((*sizes)[i + 1]) / double(target[i])));
  return d;
}

nlohmann::json point_json(const ir::Graph& g, const cut::CutPoint& p) {
  return {{"row", p.row}, {"node", g.nodes[static_cast<size_t>(p.node)].name}, {"tensor", p.tensor},
          {"shape", shape_json(g.value(p.tensor).shape)}, {"bytes_per_image", p.bytes},
          {"macs_before", p.macs_before}, {"macs_after", p.macs_after}};
}

std::vector<std::string> point_row(const ir::Graph& g, const cut::CutPoint& p) {
  return {std::to_string(p.row), g.nodes[static_cast<size_t>(p.node)].name, p.tensor,
          ir::shape_str(g.value(p.tensor).shape), p.bytes < 0 ? "?" : thousands(p.bytes),
          thousands(p.macs_before), thousands(p.macs_after)};
}

const std::vector<std::string> kPointHeader = {">#", "Node", "Tensor", "Shape", ">Bytes/image",
                                               ">MACs before", ">MACs after"};

// The channels of a tensor (dimension 1 of NCHW), or "?".
std::string channels(const ir::Graph& g, const std::string& t) {
  const auto& s = g.value(t).shape;
  return s && s->size() >= 2 && (*s)[1].known() ? std::to_string((*s)[1].value) : "?";
}

// Whether the layer in the next summary row reads this layer's output: Keras' layer list is
// sorted by depth, not a chain, so appending layers i, i+1, … one after another can wire them
// wrong (the canonical example's "Dimensions must be equal, but are 384 and 288").
nlohmann::json next_layer(const ir::Graph& g, int node) {
  const std::vector<int> owner = ir::layer_nodes(g);
  const std::vector<int64_t> rows = ir::node_rows(g);
  const int64_t row = rows[static_cast<size_t>(node)];
  const int next = ir::node_at_row(g, row + 1);
  if (next < 0) return nullptr;
  const ir::Node& mine = g.nodes[static_cast<size_t>(node)];
  nlohmann::json reads = nlohmann::json::array();
  bool chained = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (owner[i] != next) continue;
    for (const auto& t : g.nodes[i].inputs) {
      if (t.empty() || g.initializers.count(t)) continue;
      const ir::Value& v = g.value(t);
      if (v.producer >= 0 && owner[static_cast<size_t>(v.producer)] == next) continue;
      const std::string from = v.producer >= 0 ? g.nodes[static_cast<size_t>(owner[static_cast<size_t>(v.producer)])].name : t;
      if (std::find(mine.outputs.begin(), mine.outputs.end(), t) != mine.outputs.end()) chained = true;
      reads.push_back({{"tensor", t}, {"shape", shape_json(v.shape)}, {"from", from},
                       {"row", v.producer >= 0 ? rows[static_cast<size_t>(v.producer)] : -1}});
    }
  }
  const ir::Node& n = g.nodes[static_cast<size_t>(next)];
  return {{"row", row + 1}, {"node", n.name}, {"op_type", n.op_type}, {"reads", reads},
          {"reads_this_layer", chained}};
}

void print_next_layer(const ir::Graph& g, int node, const nlohmann::json& next) {
  if (next.is_null() || next["reads_this_layer"].get<bool>()) return;
  const ir::Node& mine = g.nodes[static_cast<size_t>(node)];
  const std::string out = mine.outputs.at(0);
  std::printf("The layer list is not a chain here: the next row, %lld '%s' (%s), does not read this "
              "layer's output; it reads:\n",
              static_cast<long long>(next["row"].get<int64_t>()), next["node"].get<std::string>().c_str(),
              next["op_type"].get<std::string>().c_str());
  for (const auto& r : next["reads"]) {
    const std::string t = r["tensor"];
    std::printf("    '%s' %s (%s channels) from '%s' (row %lld)\n", t.c_str(),
                ir::shape_str(g.value(t).shape).c_str(), channels(g, t).c_str(),
                r["from"].get<std::string>().c_str(), static_cast<long long>(r["row"].get<int64_t>()));
  }
  if (next["reads"].empty()) return;
  const std::string want = next["reads"][0]["tensor"];
  const ir::Node& n = g.nodes[static_cast<size_t>(g.find_node(next["node"]))];
  // A layer whose weights are sized by its input channels cannot take another channel count.
  bool sized = false;
  for (size_t i = 1; i < n.inputs.size(); ++i) sized |= g.initializers.count(n.inputs[i]) > 0;
  std::printf("Appending the layers from row %lld on one after another (as a Keras Sequential does) "
              "would feed '%s' (%s channels) into '%s' (%s) in place of '%s' (%s channels)",
              static_cast<long long>(ir::row_index(g, node)), out.c_str(), channels(g, out).c_str(),
              n.name.c_str(), n.op_type.c_str(), want.c_str(), channels(g, want).c_str());
  if (sized && channels(g, out) != channels(g, want)) {
    std::printf(": its weights expect %s channels, the \"Dimensions must be equal, but are %s and %s\" error",
                channels(g, want).c_str(), channels(g, out).c_str(), channels(g, want).c_str());
  }
  std::printf(". Cut at a cut point instead.\n");
}

void run(const CutsArgs& a) {
  const ir::Graph g = load_model(a.model, a.input_shapes, 1, /*weights=*/false);
  const std::vector<cut::CutPoint> points = cut::cut_points(g);
  nlohmann::json j = {{"model", a.model}, {"cut_points", nlohmann::json::array()}};
  for (const auto& p : points) j["cut_points"].push_back(point_json(g, p));

  if (!a.near.empty()) {
    const int node = cut::resolve_layer(g, a.near);
    const cut::Advice advice = cut::advise(g, node, points);
    const auto& crossing = advice.crossing;
    const auto& needed_inputs = advice.inputs_still_needed;
    const cut::CutPoint* before = advice.before ? &*advice.before : nullptr;
    const cut::CutPoint* after = advice.after ? &*advice.after : nullptr;
    const bool is_cut_point = advice.is_cut_point;
    nlohmann::json near = {{"layer", a.near}, {"node", g.nodes[static_cast<size_t>(node)].name},
                           {"row", ir::row_index(g, node)}, {"is_cut_point", is_cut_point},
                           {"crossing", nlohmann::json::array()}, {"inputs_still_needed", needed_inputs}};
    for (const auto& t : crossing) {
      const ir::Value& v = g.value(t);
      near["crossing"].push_back({{"tensor", t}, {"shape", shape_json(v.shape)},
                                  {"producer", g.nodes[static_cast<size_t>(v.producer)].name},
                                  {"row", ir::row_index(g, v.producer)}});
    }
    near["next_layer"] = next_layer(g, node);
    if (before) near["cut_point_before"] = point_json(g, *before);
    if (after) near["cut_point_after"] = point_json(g, *after);
    j["near"] = near;
    if (!a.json) {
      const std::string layer = "'" + g.nodes[static_cast<size_t>(node)].name + "' (row " +
                                std::to_string(ir::row_index(g, node)) + ")";
      if (is_cut_point) {
        std::printf("%s is a cut point: the model can be cut there at the single tensor '%s' %s.\n",
                    layer.c_str(), crossing[0].c_str(), ir::shape_str(g.value(crossing[0]).shape).c_str());
      } else {
        std::printf("%s is not a cut point: after it, %zu tensors cross to the rest of the graph, "
                    "so a tail starting there needs all of them, not one.\n",
                    layer.c_str(), crossing.size());
        std::vector<std::vector<std::string>> rows;
        for (const auto& c : near["crossing"]) {
          rows.push_back({c["tensor"], ir::shape_str(g.value(c["tensor"]).shape), c["producer"],
                          std::to_string(c["row"].get<int64_t>())});
        }
        print_table({"Tensor", "Shape", "Produced by", ">Row"}, rows);
        for (const auto& in : needed_inputs) {
          std::printf("The rest of the graph also reads graph input '%s' directly.\n", in.c_str());
        }
      }
      print_next_layer(g, node, near["next_layer"]);
      std::printf("Nearest cut points:\n");
      std::vector<std::vector<std::string>> rows;
      if (before) rows.push_back(point_row(g, *before));
      if (after) rows.push_back(point_row(g, *after));
      print_table(kPointHeader, rows);
      if (!is_cut_point) {
        std::printf("Cut at one of them (graft cut MODEL --at tensor:NAME), or take all crossing "
                    "tensors (graft cut MODEL --at %s): the tail then has %zu inputs.\n",
                    a.near.c_str(), crossing.size());
      }
    }
  }

  if (!a.shape.empty()) {
    const auto target = parse_chw(a.shape);
    std::vector<std::pair<double, const cut::CutPoint*>> ranked;
    for (const auto& p : points) ranked.emplace_back(distance(g.value(p.tensor), target), &p);
    std::stable_sort(ranked.begin(), ranked.end(), [](auto& x, auto& y) { return x.first < y.first; });
    j["ranked"] = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (size_t i = 0; i < ranked.size() && i < 10; ++i) {
      nlohmann::json e = point_json(g, *ranked[i].second);
      e["distance"] = ranked[i].first;
      j["ranked"].push_back(e);
      auto row = point_row(g, *ranked[i].second);
      char d[32];
      std::snprintf(d, sizeof d, "%.3f", ranked[i].first);
      row.insert(row.begin(), d);
      rows.push_back(row);
    }
    if (!a.json) {
      std::printf("Cut points closest to %s (distance: summed |log ratio| of C, H, W):\n", a.shape.c_str());
      auto header = kPointHeader;
      header.insert(header.begin(), ">Distance");
      print_table(header, rows);
    }
  }
  if (a.json) {
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  if (a.near.empty() && a.shape.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : points) rows.push_back(point_row(g, p));
    print_table(kPointHeader, rows);
    std::printf("%zu cut points (tensors every input-to-output path passes through); figures per image\n",
                points.size());
  }
}

}  // namespace

Command add_cuts_command(CLI::App& root) {
  auto args = std::make_shared<CutsArgs>();
  CLI::App* app = root.add_subcommand("cuts", "List the cut points of a model; explain a layer's frontier");
  app->add_option("model", args->model, "Model file: ONNX or Keras (HDF5, .keras, TF.js model.json, JSON)")->required();
  app->add_option("--near", args->near, "Explain cutting after LAYER (row index or node name)");
  app->add_option("--shape", args->shape, "Rank cut points by closeness to CxHxW");
  add_input_shape_option(app, &args->input_shapes);
  app->add_flag("--json", args->json, "Machine-readable output");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
