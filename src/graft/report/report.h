// graft::report — one self-contained HTML page (`graft report`): inline SVG and CSS, no script,
// nothing fetched, readable without JavaScript (hover text is SVG <title>). Each input becomes a
// section:
// - a model or hybrid: its summary and the network drawn as a strip of layers (bar height: MACs,
//   log scale), its cut points marked with their bytes per image (the line above), a hybrid's
//   head, adapter and tail in their own colours and its split point marked;
// - a search result (graft search -o): accuracy vs device MACs and vs split bytes, every
//   candidate a point (hover: its cut pair, adapter and figures), the Pareto front joined and
//   labelled, the two source models as reference lines; the front as a table;
// - a plan (graft plan --json): end-to-end latency vs split point, one line per bandwidth;
// - a training log (graft train --log): loss and accuracy per step, with per-epoch means;
// - an evaluation (graft eval --json, or the demo's eval.json): top-1 and the confusion matrix
//   as a heat map per model;
// - the demo's summary (demo.json): its final table.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::report {

struct Section {
  std::string title;
  std::string html;
};

// What a JSON document is: "search", "plan", "eval", "demo", or "" (unknown).
std::string kind_of(const nlohmann::json& j);

// `shapes`: the model with shapes inferred (weights not needed).
Section model_section(const ir::Graph& shapes, const std::string& path);
Section search_section(const nlohmann::json& search, const std::string& path);
Section plan_section(const nlohmann::json& plan, const std::string& path);
Section training_section(const std::vector<nlohmann::json>& steps, const std::string& path);
Section eval_section(const nlohmann::json& eval, const std::string& path);
Section demo_section(const nlohmann::json& demo, const std::string& path);

// The whole page.
std::string page(const std::string& title, const std::vector<Section>& sections);

std::string html_escape(const std::string& text);

}  // namespace graft::report
