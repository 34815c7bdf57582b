#include "graft/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "graft/core/error.h"
#include "graft/core/version.h"
#include "graft/cut/cut.h"
#include "graft/ir/metadata.h"
#include "graft/ir/summary.h"

namespace graft::report {
namespace {

using nlohmann::json;

const char* const kPalette[] = {"#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#eeca3b"};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// 1234567 -> "1.23M", 4096 -> "4.1k", 12 -> "12".
std::string si(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt("%.3gG", v / 1e9);
  if (a >= 1e6) return fmt("%.3gM", v / 1e6);
  if (a >= 1e3) return fmt("%.3gk", v / 1e3);
  return fmt("%.3g", v);
}

std::string thousands(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string pct(double f) { return fmt("%.2f%%", 100 * f); }

// A field of an input document, or an Error naming the file and the field.
const json& field(const json& j, const std::string& key, const std::string& path) {
  if (!j.is_object() || !j.contains(key)) throw Error(path + ": no '" + key + "' where a report needs it");
  return j.at(key);
}
double number(const json& j, const std::string& key, const std::string& path) {
  const json& v = field(j, key, path);
  if (!v.is_number()) throw Error(path + ": '" + key + "' is not a number");
  return v.get<double>();
}
std::string text(const json& j, const std::string& key, const std::string& path) {
  const json& v = field(j, key, path);
  if (!v.is_string()) throw Error(path + ": '" + key + "' is not a string");
  return v.get<std::string>();
}

// ---- charts -------------------------------------------------------------------------------

struct Axis {
  explicit Axis(std::string text, bool log_scale = false) : label(std::move(text)), log(log_scale) {}
  std::string label;
  bool log = false;
  double lo = 0, hi = 0;  // lo >= hi: from the data
  std::function<std::string(double)> tick = si;
  std::vector<double> ticks;  // given ticks (categorical axes)
};

struct Point {
  double x = 0, y = 0;
  std::string tip, label;
};

struct Series {
  std::string name, color = kPalette[0];
  std::vector<Point> points;
  bool line = false, dots = true;
  double radius = 3.5;
  bool emphasis = false;  // outlined dots
};

struct RefLine {
  double y = 0;
  std::string label, color = "#666";
};

std::vector<double> nice_ticks(double lo, double hi, bool log) {
  std::vector<double> t;
  if (log) {
    const int a = static_cast<int>(std::floor(std::log10(lo))), b = static_cast<int>(std::ceil(std::log10(hi)));
    const bool fine = b - a <= 2;
    for (int e = a; e <= b; ++e) {
      for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        const double v = m * std::pow(10.0, e);
        if (v >= lo * 0.999 && v <= hi * 1.001) t.push_back(v);
      }
    }
    return t;
  }
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return t;
}

void fit_range(Axis& a, const std::vector<double>& values) {
  if (a.lo < a.hi) return;
  double lo = 1e300, hi = -1e300;
  for (double v : values) {
    if (a.log && !(v > 0)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (lo > hi) {
    lo = a.log ? 1 : 0;
    hi = a.log ? 10 : 1;
  }
  if (a.log) {
    if (hi / lo < 1.5) {
      lo /= 1.3;
      hi *= 1.3;
    } else {
      lo /= std::pow(hi / lo, 0.04);
      hi *= std::pow(hi / lo, 0.04);
    }
  } else {
    const double pad = hi > lo ? (hi - lo) * 0.05 : std::max(std::fabs(hi) * 0.1, 1.0);
    lo -= pad;
    hi += pad;
  }
  a.lo = lo;
  a.hi = hi;
}

std::string chart(Axis x, Axis y, const std::vector<Series>& series, const std::vector<RefLine>& refs,
                  const std::string& caption, int width = 660, int height = 340) {
  std::vector<double> xs, ys;
  for (const auto& s : series) {
    for (const auto& p : s.points) {
      xs.push_back(p.x);
      ys.push_back(p.y);
    }
  }
  for (const auto& r : refs) ys.push_back(r.y);
  fit_range(x, xs);
  fit_range(y, ys);
  const double left = 70, right = 20, top = 28, bottom = 48;
  const double pw = width - left - right, ph = height - top - bottom;
  auto map = [](const Axis& a, double v, double len) {
    if (a.log) {
      v = std::max(v, a.lo);
      return len * (std::log(v) - std::log(a.lo)) / (std::log(a.hi) - std::log(a.lo));
    }
    return len * (v - a.lo) / (a.hi - a.lo);
  };
  auto px = [&](double v) { return left + map(x, v, pw); };
  auto py = [&](double v) { return top + ph - map(y, v, ph); };
  std::string s = "<figure><svg class=\"chart\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
                  "\" width=\"" + std::to_string(width) + "\" height=\"" + std::to_string(height) +
                  "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>" + html_escape(caption) + "</title>";
  s += "<rect x=\"" + fmt("%.1f", left) + "\" y=\"" + fmt("%.1f", top) + "\" width=\"" + fmt("%.1f", pw) +
       "\" height=\"" + fmt("%.1f", ph) + "\" class=\"plot\"/>";
  for (double t : x.ticks.empty() ? nice_ticks(x.lo, x.hi, x.log) : x.ticks) {
    if (t < x.lo || t > x.hi) continue;
    const double X = px(t);
    s += "<line class=\"grid\" x1=\"" + fmt("%.1f", X) + "\" y1=\"" + fmt("%.1f", top) + "\" x2=\"" + fmt("%.1f", X) +
         "\" y2=\"" + fmt("%.1f", top + ph) + "\"/><text class=\"tick\" x=\"" + fmt("%.1f", X) + "\" y=\"" +
         fmt("%.1f", top + ph + 16) + "\" text-anchor=\"middle\">" + html_escape(x.tick(t)) + "</text>";
  }
  for (double t : y.ticks.empty() ? nice_ticks(y.lo, y.hi, y.log) : y.ticks) {
    if (t < y.lo || t > y.hi) continue;
    const double Y = py(t);
    s += "<line class=\"grid\" x1=\"" + fmt("%.1f", left) + "\" y1=\"" + fmt("%.1f", Y) + "\" x2=\"" +
         fmt("%.1f", left + pw) + "\" y2=\"" + fmt("%.1f", Y) + "\"/><text class=\"tick\" x=\"" + fmt("%.1f", left - 6) +
         "\" y=\"" + fmt("%.1f", Y + 4) + "\" text-anchor=\"end\">" + html_escape(y.tick(t)) + "</text>";
  }
  s += "<text class=\"axis\" x=\"" + fmt("%.1f", left + pw / 2) + "\" y=\"" + std::to_string(height - 8) +
       "\" text-anchor=\"middle\">" + html_escape(x.label) + "</text>";
  s += "<text class=\"axis\" transform=\"translate(14," + fmt("%.1f", top + ph / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + html_escape(y.label) + "</text>";
  for (size_t ri = 0; ri < refs.size(); ++ri) {
    const RefLine& r = refs[ri];
    if (r.y < y.lo || r.y > y.hi) continue;
    const double Y = py(r.y);
    // Labels alternate between the left and the right end, so close lines stay readable.
    const bool at_right = ri % 2 == 1;
    s += "<line class=\"ref\" stroke=\"" + r.color + "\" x1=\"" + fmt("%.1f", left) + "\" y1=\"" + fmt("%.1f", Y) +
         "\" x2=\"" + fmt("%.1f", left + pw) + "\" y2=\"" + fmt("%.1f", Y) + "\"><title>" + html_escape(r.label) +
         "</title></line><text class=\"reflabel\" x=\"" + fmt("%.1f", at_right ? left + pw - 4 : left + 4) + "\" y=\"" +
         fmt("%.1f", Y - 4) + "\" text-anchor=\"" + (at_right ? "end" : "start") + "\" fill=\"" + r.color + "\">" +
         html_escape(r.label) + "</text>";
  }
  for (const auto& se : series) {
    if (se.line && se.points.size() > 1) {
      std::string pts;
      for (const auto& p : se.points) pts += fmt("%.1f", px(p.x)) + "," + fmt("%.1f", py(p.y)) + " ";
      s += "<polyline class=\"series\" fill=\"none\" stroke=\"" + se.color + "\" points=\"" + pts + "\"/>";
    }
    if (!se.dots) continue;
    for (const auto& p : se.points) {
      s += "<circle class=\"" + std::string(se.emphasis ? "dot emphasis" : "dot") + "\" cx=\"" + fmt("%.1f", px(p.x)) +
           "\" cy=\"" + fmt("%.1f", py(p.y)) + "\" r=\"" + fmt("%.1f", se.radius) + "\" fill=\"" + se.color + "\">";
      if (!p.tip.empty()) s += "<title>" + html_escape(p.tip) + "</title>";
      s += "</circle>";
      if (!p.label.empty()) {
        s += "<text class=\"label\" x=\"" + fmt("%.1f", px(p.x) + 6) + "\" y=\"" + fmt("%.1f", py(p.y) - 6) + "\">" +
             html_escape(p.label) + "</text>";
      }
    }
  }
  // Legend: one row above the plot.
  double lx = left;
  for (const auto& se : series) {
    if (se.name.empty()) continue;
    s += "<rect x=\"" + fmt("%.1f", lx) + "\" y=\"8\" width=\"10\" height=\"10\" fill=\"" + se.color +
         "\"/><text class=\"legend\" x=\"" + fmt("%.1f", lx + 14) + "\" y=\"17\">" + html_escape(se.name) + "</text>";
    lx += 24 + 6.2 * static_cast<double>(se.name.size());
  }
  s += "</svg><figcaption>" + html_escape(caption) + "</figcaption></figure>";
  return s;
}

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string s = "<table><thead><tr>";
  for (const auto& h : header) s += "<th>" + html_escape(h) + "</th>";
  s += "</tr></thead><tbody>";
  for (const auto& r : rows) {
    s += "<tr>";
    for (const auto& c : r) s += "<td>" + html_escape(c) + "</td>";
    s += "</tr>";
  }
  return s + "</tbody></table>";
}

std::string para(const std::string& t) { return "<p>" + html_escape(t) + "</p>"; }

std::string percent_tick(double v) { return fmt("%.4g%%", v); }

}  // namespace

std::string html_escape(const std::string& t) {
  std::string out;
  out.reserve(t.size());
  for (char c : t) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string kind_of(const json& j) {
  if (!j.is_object()) return "";
  if (j.value("kind", "") == "graft.search") return "search";
  if (j.contains("plan") || j.contains("sweep")) return "plan";
  if (j.contains("models") && j["models"].is_array()) return "eval";
  if (j.contains("hybrid") && j.contains("mobile") && j.contains("server")) return "demo";
  return "";
}

Section model_section(const ir::Graph& g, const std::string& path) {
  const ir::Summary sum = ir::summarize(g);
  const std::vector<cut::CutPoint> points = cut::cut_points(g);
  const bool hybrid = g.get_metadata(ir::kMetaRole) == "hybrid";
  std::string split;
  if (hybrid) {
    const json record = json::parse(g.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
    if (record.is_object()) split = record.value("split_point", "");
  }
  std::map<int64_t, const cut::CutPoint*> cut_at_row;
  for (const auto& p : points) cut_at_row[p.row] = &p;
  int64_t max_macs = 1, max_bytes = 1, min_bytes = INT64_MAX;
  for (const auto& r : sum.rows) max_macs = std::max(max_macs, r.macs.value_or(0));
  for (const auto& p : points) {
    if (p.bytes > 0) {
      max_bytes = std::max(max_bytes, p.bytes);
      min_bytes = std::min(min_bytes, p.bytes);
    }
  }
  if (min_bytes == INT64_MAX) min_bytes = 1;
  const size_t n = sum.rows.size();
  const double dx = std::clamp(900.0 / std::max<size_t>(n, 1), 3.0, 14.0);
  const double left = 70, bar_top = 120, bar_h = 110, width = left + dx * static_cast<double>(n) + 30;
  const double height = bar_top + bar_h + 60;
  auto part_color = [&](const ir::SummaryRow& r) -> std::string {
    if (hybrid) {
      if (r.name.rfind("a/", 0) == 0) return kPalette[0];
      if (r.name.rfind("adapter", 0) == 0) return kPalette[1];
      if (r.name.rfind("b/", 0) == 0) return kPalette[2];
      return "#999";
    }
    const std::string& op = r.op_type;
    if (op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul") return kPalette[0];
    if (op == "Add" || op == "Concat" || op == "Mul" || op == "Sum") return kPalette[3];
    if (op.find("Pool") != std::string::npos) return kPalette[4];
    return "#9ecae9";
  };
  std::string s = "<div class=\"strip\"><svg viewBox=\"0 0 " + fmt("%.0f", width) + " " + fmt("%.0f", height) +
                  "\" width=\"" + fmt("%.0f", width) + "\" height=\"" + fmt("%.0f", height) +
                  "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>" +
                  html_escape(path + ": layers (bar height: MACs) and cut points (bytes per image)") + "</title>";
  s += "<text class=\"axis\" x=\"4\" y=\"" + fmt("%.0f", bar_top + bar_h / 2) + "\">MACs</text>";
  s += "<text class=\"axis\" x=\"4\" y=\"60\">bytes</text>";
  // Bytes at cut points: a line (log scale) over the strip, y in [20, 100].
  auto by = [&](int64_t b) {
    const double lo = std::log(static_cast<double>(min_bytes)), hi = std::log(static_cast<double>(max_bytes));
    const double f = hi > lo ? (std::log(static_cast<double>(std::max<int64_t>(b, 1))) - lo) / (hi - lo) : 0.5;
    return 100 - 80 * f;
  };
  std::string line;
  for (size_t i = 0; i < n; ++i) {
    const ir::SummaryRow& r = sum.rows[i];
    const double X = left + dx * static_cast<double>(i);
    const int64_t macs = r.macs.value_or(0);
    const double h = macs > 0 ? 6 + (bar_h - 6) * std::log10(static_cast<double>(macs) + 1) /
                                        std::log10(static_cast<double>(max_macs) + 1)
                              : 2;
    std::string shape;
    if (!r.output_shapes.empty() && r.output_shapes[0]) shape = ir::shape_str(r.output_shapes[0]);
    std::string tip = "row " + std::to_string(r.index) + ": " + r.name + " (" + r.op_type + ") " + shape + ", " +
                      thousands(r.params) + " params, " + thousands(macs) + " MACs";
    auto cp = cut_at_row.find(r.index);
    if (cp != cut_at_row.end()) {
      tip += "; cut point: " + thousands(cp->second->bytes) + " bytes/image, device " +
             thousands(cp->second->macs_before) + " MACs, server " + thousands(cp->second->macs_after) + " MACs";
      const double Y = by(cp->second->bytes);
      line += fmt("%.1f", X + dx / 2) + "," + fmt("%.1f", Y) + " ";
      s += "<circle class=\"cut\" cx=\"" + fmt("%.1f", X + dx / 2) + "\" cy=\"" + fmt("%.1f", Y) + "\" r=\"2.5\"><title>" +
           html_escape(cp->second->tensor + ": " + thousands(cp->second->bytes) + " bytes/image") + "</title></circle>";
      s += "<path class=\"cutmark\" d=\"M" + fmt("%.1f", X + dx / 2) + " " + fmt("%.1f", bar_top + bar_h + 4) + " l-3 6 h6 z\"/>";
    }
    s += "<rect class=\"layer\" x=\"" + fmt("%.1f", X) + "\" y=\"" + fmt("%.1f", bar_top + bar_h - h) + "\" width=\"" +
         fmt("%.1f", std::max(dx - 0.6, 1.0)) + "\" height=\"" + fmt("%.1f", h) + "\" fill=\"" + part_color(r) +
         "\"><title>" + html_escape(tip) + "</title></rect>";
    if (!split.empty() && std::find(r.outputs.begin(), r.outputs.end(), split) != r.outputs.end()) {
      s += "<line class=\"split\" x1=\"" + fmt("%.1f", X + dx) + "\" y1=\"14\" x2=\"" + fmt("%.1f", X + dx) + "\" y2=\"" +
           fmt("%.1f", bar_top + bar_h + 12) + "\"/><text class=\"label\" x=\"" + fmt("%.1f", X + dx + 4) +
           "\" y=\"14\">split: " + html_escape(split) + "</text>";
    }
    const size_t every = static_cast<size_t>(std::max(1.0, std::ceil(40 / dx)));
    if (i % every == 0) {
      s += "<text class=\"tick\" x=\"" + fmt("%.1f", X) + "\" y=\"" + fmt("%.1f", bar_top + bar_h + 26) + "\">" +
           std::to_string(r.index) + "</text>";
    }
  }
  if (!line.empty()) s = s + "<polyline class=\"bytes\" fill=\"none\" points=\"" + line + "\"/>";
  s += "<text class=\"axis\" x=\"" + fmt("%.0f", left) + "\" y=\"" + fmt("%.0f", height - 6) +
       "\">summary row (hover a bar for the layer; dots: cut points, their bytes per image)</text></svg></div>";
  std::string legend = hybrid ? "<p class=\"key\"><span style=\"background:" + std::string(kPalette[0]) +
                                    "\"></span>head (mobile) <span style=\"background:" + kPalette[1] +
                                    "\"></span>adapter <span style=\"background:" + kPalette[2] +
                                    "\"></span>tail (server)</p>"
                              : "<p class=\"key\"><span style=\"background:" + std::string(kPalette[0]) +
                                    "\"></span>convolution / matmul <span style=\"background:" + kPalette[3] +
                                    "\"></span>add / concat <span style=\"background:" + kPalette[4] +
                                    "\"></span>pooling <span style=\"background:#9ecae9\"></span>other</p>";
  std::vector<std::vector<std::string>> rows = {
      {"layers (summary rows)", std::to_string(n)},
      {"parameters", thousands(sum.params)},
      {"MACs per image", thousands(sum.macs)},
      {"cut points", std::to_string(points.size())}};
  if (!g.inputs.empty()) rows.insert(rows.begin(), {"input", g.inputs[0] + " " + ir::shape_str(g.value(g.inputs[0]).shape)});
  if (!split.empty()) {
    for (const auto& p : points) {
      if (p.tensor != split) continue;
      rows.push_back({"split point", split + ": " + thousands(p.bytes) + " bytes/image"});
      rows.push_back({"device / server MACs", thousands(p.macs_before) + " / " + thousands(p.macs_after)});
    }
  }
  return {(hybrid ? "Hybrid " : "Model ") + path, table({"", ""}, rows) + legend + s};
}

Section search_section(const json& j, const std::string& path) {
  const json& cands = field(j, "candidates", path);
  const json& base = field(j, "baselines", path);
  std::set<int> front;
  for (const auto& id : field(j, "front", path)) front.insert(id.get<int>());
  // One series per adapter family in each view (device MACs, split bytes), the front on top.
  std::map<std::string, Series> by_family, by_family_bytes;
  Series fx, fb;
  fx.name = "Pareto front";
  fx.color = "#222";
  fx.radius = 5.5;
  fx.emphasis = true;
  fb = fx;
  std::vector<std::vector<std::string>> rows;
  int evaluated = 0;
  for (const auto& c : cands) {
    if (!c.contains("holdout_top1")) continue;
    ++evaluated;
    const int id = c.at("id").get<int>();
    const double acc = 100 * number(c, "holdout_top1", path);
    const double dev = number(c, "device_macs", path), bytes = number(c, "split_bytes", path);
    const std::string fam = text(c, "family", path);
    const int64_t images = c.contains("evaluations") && !c["evaluations"].empty()
                               ? c["evaluations"].back().value("images", int64_t{0})
                               : 0;
    const std::string tip = "#" + std::to_string(id) + " " + text(c, "mobile_cut", path) + " -> " +
                            text(c, "server_cut", path) + " (" + text(c, "adapter", path) + "): " + fmt("%.2f", acc) +
                            "% held-out after " + thousands(images) + " images; device " +
                            thousands(static_cast<int64_t>(dev)) + " MACs, " + thousands(static_cast<int64_t>(bytes)) +
                            " bytes at the split";
    if (!by_family.count(fam)) {
      Series s;
      s.name = fam + " adapters";
      s.color = kPalette[by_family.size() % 8];
      s.radius = 3;
      by_family[fam] = s;
      by_family_bytes[fam] = s;
    }
    by_family[fam].points.push_back({dev, acc, tip, ""});
    by_family_bytes[fam].points.push_back({bytes, acc, tip, ""});
    if (front.count(id)) {
      fx.points.push_back({dev, acc, tip, "#" + std::to_string(id)});
      fb.points.push_back({bytes, acc, tip, "#" + std::to_string(id)});
      rows.push_back({"#" + std::to_string(id), text(c, "mobile_cut", path), text(c, "server_cut", path),
                      text(c, "adapter", path), fmt("%.2f%%", acc),
                      c.contains("test_top1") ? pct(c["test_top1"].get<double>()) : "-",
                      thousands(static_cast<int64_t>(dev)), thousands(c.value("server_macs", int64_t{0})),
                      thousands(static_cast<int64_t>(bytes)), thousands(images)});
    }
  }
  std::vector<Series> sx, sb;
  for (const auto& [fam, s] : by_family) sx.push_back(s);
  for (const auto& [fam, s] : by_family_bytes) sb.push_back(s);
  sx.push_back(fx);
  sb.push_back(fb);
  std::vector<RefLine> refs;
  const double mh = 100 * number(field(base, "mobile", path), "holdout_top1", path);
  const double sh = 100 * number(field(base, "server", path), "holdout_top1", path);
  refs.push_back({sh, "server " + fmt("%.2f%%", sh), "#2f6b2f"});
  refs.push_back({mh, "mobile " + fmt("%.2f%%", mh), "#8a5a00"});
  Axis y{"held-out top-1 (%)"};
  y.tick = percent_tick;
  Axis x1{"device MACs per image (log)", true};
  Axis x2{"bytes per image at the split (float32, log)", true};
  std::string html = para(std::to_string(evaluated) + " candidates evaluated (" +
                          std::to_string(j.value("pairs_kept", 0)) + " cut pairs kept of " +
                          std::to_string(j.value("pairs_joinable", 0)) + " joinable), " +
                          std::to_string(j.value("rungs_done", 0)) + " rung(s) in " + fmt("%.0f", j.value("seconds", 0.0)) +
                          " s" + (j.value("complete", false) ? "" : " (stopped early: resumable)") + "; " +
                          thousands(j.value("train_images", int64_t{0})) + " training images, " +
                          thousands(j.value("holdout_images", int64_t{0})) +
                          " held out for scoring. Each point's accuracy is from its last rung (hover for the images it "
                          "trained on); the front is non-dominated on accuracy, device MACs and split bytes together, so "
                          "in each two-dimensional view some front points sit below others.");
  html += chart(x1, y, sx, refs, "Accuracy vs device compute: every candidate, the Pareto front outlined and numbered");
  html += chart(x2, y, sb, refs, "Accuracy vs bytes sent at the split");
  auto macs_of = [](const std::vector<std::string>& r) {
    std::string digits;
    for (char ch : r[6]) {
      if (ch != ',') digits += ch;
    }
    return std::stoll(digits);
  };
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) { return macs_of(a) < macs_of(b); });
  std::string tests;
  if (base["mobile"].contains("test_top1") && base["server"].contains("test_top1")) {
    tests = "; on the test split: mobile " + pct(base["mobile"]["test_top1"].get<double>()) + ", server " +
            pct(base["server"]["test_top1"].get<double>());
  }
  html += para("The front (held-out accuracy; test accuracy where measured" + tests + "):");
  html += table({"#", "mobile cut", "server cut", "adapter", "held-out", "test", "device MACs", "server MACs",
                 "split bytes", "images"},
                rows);
  return {"Search " + path, html};
}

Section plan_section(const json& j, const std::string& path) {
  std::vector<json> plans;
  if (j.contains("plan")) plans.push_back(j["plan"]);
  if (j.contains("sweep")) {
    for (const auto& p : j["sweep"]) plans.push_back(p);
  }
  if (plans.empty()) throw Error(path + ": a plan with neither 'plan' nor 'sweep'");
  // x: 0 all on the server, the split rows in model order, then all on the device.
  std::vector<int64_t> split_rows;
  std::map<int64_t, std::string> names;
  for (const auto& r : field(plans[0], "rows", path)) {
    if (text(r, "kind", path) == "split") {
      split_rows.push_back(r.value("row", int64_t{0}));
      names[r.value("row", int64_t{0})] = r.value("tensor", "");
    }
  }
  std::sort(split_rows.begin(), split_rows.end());
  split_rows.erase(std::unique(split_rows.begin(), split_rows.end()), split_rows.end());
  auto xpos = [&](const json& r) -> double {
    const std::string k = r.value("kind", "");
    if (k == "server") return 0;
    if (k == "device") return static_cast<double>(split_rows.size() + 1);
    const int64_t row = r.value("row", int64_t{0});
    return static_cast<double>(std::lower_bound(split_rows.begin(), split_rows.end(), row) - split_rows.begin() + 1);
  };
  std::vector<Series> series;
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < plans.size(); ++i) {
    const json& p = plans[i];
    Series s, best;
    s.name = text(p, "bandwidth", path) + ", rtt " + fmt("%.3g", number(p, "rtt_ms", path)) + " ms";
    s.color = kPalette[i % 8];
    s.line = true;
    s.radius = 2.5;
    const int64_t b = static_cast<int64_t>(number(p, "best", path));
    std::vector<std::pair<double, Point>> pts;
    const json& prow = field(p, "rows", path);
    for (size_t k = 0; k < prow.size(); ++k) {
      const json& r = prow[k];
      const std::string kind = r.value("kind", "");
      const std::string where = kind == "split" ? "split at " + r.value("tensor", "") + " (row " +
                                                      std::to_string(r.value("row", int64_t{0})) + ")"
                                : kind == "device" ? "all on the device"
                                                   : "all on the server (" + r.value("wire", "") + ")";
      const double total = number(r, "total_ms", path);
      Point pt{xpos(r), total,
               s.name + ": " + where + ": " + fmt("%.3f", total) + " ms (device " + fmt("%.3f", r.value("device_ms", 0.0)) +
                   ", transfer " + fmt("%.3f", r.value("transfer_ms", 0.0)) + ", server " +
                   fmt("%.3f", r.value("server_ms", 0.0)) + "), " + thousands(r.value("bytes", int64_t{0})) + " bytes",
               ""};
      if (static_cast<int64_t>(k) == b) {
        Point q = pt;
        q.label = "best";
        best.points.push_back(q);
        rows.push_back({s.name, where, fmt("%.3f ms", total), thousands(r.value("bytes", int64_t{0}))});
      }
      pts.push_back({pt.x, pt});
    }
    std::stable_sort(pts.begin(), pts.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
    // Several rows at one x (PNG and raw input, all on the server): keep them all as dots.
    for (auto& [x, pt] : pts) s.points.push_back(pt);
    series.push_back(s);
    best.color = s.color;
    best.radius = 6;
    best.emphasis = true;
    series.push_back(best);
  }
  double lo = 1e300, hi = 0;
  for (const auto& s : series) {
    for (const auto& p : s.points) {
      lo = std::min(lo, p.y);
      hi = std::max(hi, p.y);
    }
  }
  Axis x{"where the model is split: all on the server, cut points in model order, all on the device"};
  x.lo = -0.5;
  x.hi = static_cast<double>(split_rows.size()) + 1.5;
  const size_t every = std::max<size_t>(1, (split_rows.size() + 2) / 10);
  for (size_t i = 0; i < split_rows.size() + 2; i += every) x.ticks.push_back(static_cast<double>(i));
  x.tick = [n = split_rows.size(), split_rows](double v) -> std::string {
    const auto i = static_cast<size_t>(std::llround(v));
    if (i == 0) return "server";
    if (i == n + 1) return "device";
    return "row " + std::to_string(split_rows[i - 1]);
  };
  Axis y{"end-to-end latency (ms)", hi > 0 && lo > 0 && hi / lo > 20};
  y.tick = [](double v) { return fmt("%.3g", v); };
  std::string html = para(std::string("Model ") + j.value("model", std::string("?")) + "; codec " +
                          plans[0].value("codec", "fp32") + (plans[0].value("zstd", false) ? "+zstd" : "") +
                          "; batch " + std::to_string(plans[0].value("batch", 1)) +
                          ". Each line is one link; the outlined dot is its best choice.");
  html += chart(x, y, series, {}, "End-to-end latency by split point, one line per bandwidth", 760, 380);
  html += table({"link", "best", "latency", "bytes sent"}, rows);
  return {"Plan " + path, html};
}

Section training_section(const std::vector<json>& steps, const std::string& path) {
  if (steps.empty()) throw Error(path + ": a training log with no steps");
  Series loss, acc, eloss, eacc;
  loss.line = acc.line = true;
  loss.dots = acc.dots = false;
  loss.name = "loss per step";
  acc.name = "accuracy per step (training batch)";
  loss.color = acc.color = "#9ecae9";
  eloss.name = "epoch mean";
  eacc.name = "epoch mean";
  eloss.color = eacc.color = kPalette[0];
  eloss.line = eacc.line = true;
  const size_t every = std::max<size_t>(1, steps.size() / 1500);
  std::map<int64_t, std::pair<double, double>> sums;
  std::map<int64_t, int64_t> counts, last_step;
  double seconds = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = steps[i];
    const double step = number(s, "step", path), l = number(s, "loss", path);
    const double a = s.contains("accuracy") ? s["accuracy"].get<double>() : std::nan("");
    const int64_t epoch = s.value("epoch", int64_t{1});
    seconds = s.value("seconds", seconds);
    if (i % every == 0) {
      loss.points.push_back({step, l, "", ""});
      if (!std::isnan(a)) acc.points.push_back({step, 100 * a, "", ""});
    }
    sums[epoch].first += l;
    sums[epoch].second += std::isnan(a) ? 0 : a;
    ++counts[epoch];
    last_step[epoch] = static_cast<int64_t>(step);
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [epoch, sum] : sums) {
    const double n = static_cast<double>(counts[epoch]);
    const double x = static_cast<double>(last_step[epoch]);
    eloss.points.push_back({x, sum.first / n, "epoch " + std::to_string(epoch) + ": mean loss " + fmt("%.4f", sum.first / n), ""});
    eacc.points.push_back({x, 100 * sum.second / n,
                           "epoch " + std::to_string(epoch) + ": mean accuracy " + fmt("%.2f%%", 100 * sum.second / n), ""});
    rows.push_back({std::to_string(epoch), std::to_string(last_step[epoch]), fmt("%.4f", sum.first / n),
                    fmt("%.2f%%", 100 * sum.second / n)});
  }
  Axis x{"step"};
  x.lo = 0;
  x.hi = number(steps.back(), "step", path);
  if (x.hi <= 0) x.hi = 1;
  Axis yl{"loss"};
  yl.tick = [](double v) { return fmt("%.3g", v); };
  Axis ya{"accuracy (%)"};
  ya.tick = percent_tick;
  std::string html = para(std::to_string(steps.size()) + " steps, " + std::to_string(sums.size()) + " epoch(s), " +
                          fmt("%.0f", seconds) + " s.");
  html += chart(x, yl, {loss, eloss}, {}, "Training loss");
  html += chart(x, ya, {acc, eacc}, {}, "Training accuracy (on each training batch)");
  html += table({"epoch", "last step", "mean loss", "mean accuracy"}, rows);
  return {"Training " + path, html};
}

Section eval_section(const json& j, const std::string& path) {
  std::string html = para(std::to_string(j.value("count", int64_t{0})) + " images of " + j.value("data", std::string("?")) +
                          " (" + j.value("split", std::string("test")) + ").");
  std::vector<std::string> classes;
  if (j.contains("classes") && j["classes"].is_array()) {
    for (const auto& c : j["classes"]) classes.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : field(j, "models", path)) {
    rows.push_back({m.value("role", std::string("model")), m.value("model", std::string("?")),
                    pct(number(m, "top1", path)), m.contains("top5") ? pct(m["top5"].get<double>()) : "-"});
  }
  html += table({"role", "model", "top-1", "top-5"}, rows);
  for (const auto& m : j["models"]) {
    const json& conf = field(m, "confusion", path);
    const size_t n = conf.size();
    if (n == 0) continue;
    const double cell = std::clamp(420.0 / static_cast<double>(n), 8.0, 44.0);
    const double left = 110, top = 40, size = cell * static_cast<double>(n);
    const double W = left + size + 20, H = top + size + 50;
    std::string s = "<figure><svg class=\"heat\" viewBox=\"0 0 " + fmt("%.0f", W) + " " + fmt("%.0f", H) +
                    "\" width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) +
                    "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>Confusion matrix of " +
                    html_escape(m.value("model", std::string("?"))) + "</title>";
    auto name = [&](size_t i) { return i < classes.size() ? classes[i] : std::to_string(i); };
    for (size_t r = 0; r < n; ++r) {
      if (!conf[r].is_array() || conf[r].size() != n) throw Error(path + ": the confusion matrix is not square");
      double total = 0;
      for (const auto& v : conf[r]) total += v.get<double>();
      s += "<text class=\"tick\" x=\"" + fmt("%.1f", left - 6) + "\" y=\"" +
           fmt("%.1f", top + cell * (static_cast<double>(r) + 0.6)) + "\" text-anchor=\"end\">" + html_escape(name(r)) + "</text>";
      for (size_t c = 0; c < n; ++c) {
        const double v = conf[r][c].get<double>();
        const double f = total > 0 ? v / total : 0;
        // Diagonal in blue, errors in red; intensity: the share of the true class.
        const int shade = static_cast<int>(255 - 215 * std::sqrt(f));
        const std::string color = r == c ? "rgb(" + std::to_string(shade) + "," + std::to_string(shade) + ",255)"
                                         : "rgb(255," + std::to_string(shade) + "," + std::to_string(shade) + ")";
        const double X = left + cell * static_cast<double>(c), Y = top + cell * static_cast<double>(r);
        s += "<rect x=\"" + fmt("%.1f", X) + "\" y=\"" + fmt("%.1f", Y) + "\" width=\"" + fmt("%.1f", cell) +
             "\" height=\"" + fmt("%.1f", cell) + "\" fill=\"" + color + "\" class=\"cell\"><title>" +
             html_escape("true " + name(r) + ", predicted " + name(c) + ": " + thousands(static_cast<int64_t>(v)) +
                         " (" + fmt("%.1f", 100 * f) + "% of " + name(r) + ")") +
             "</title></rect>";
        if (cell >= 26 && v > 0) {
          s += "<text class=\"cellnum\" x=\"" + fmt("%.1f", X + cell / 2) + "\" y=\"" + fmt("%.1f", Y + cell / 2 + 4) +
               "\" text-anchor=\"middle\">" + thousands(static_cast<int64_t>(v)) + "</text>";
        }
      }
    }
    for (size_t c = 0; c < n; ++c) {
      s += "<text class=\"tick\" transform=\"translate(" + fmt("%.1f", left + cell * (static_cast<double>(c) + 0.6)) +
           "," + fmt("%.1f", top - 6) + ") rotate(-40)\">" + html_escape(name(c)) + "</text>";
    }
    s += "<text class=\"axis\" x=\"" + fmt("%.1f", left + size / 2) + "\" y=\"" + fmt("%.1f", H - 12) +
         "\" text-anchor=\"middle\">predicted class (rows: true class)</text></svg><figcaption>" +
         html_escape("Confusion matrix: " + m.value("role", std::string("model")) + " " +
                     m.value("model", std::string("?")) + ", top-1 " + pct(m["top1"].get<double>())) +
         "</figcaption></figure>";
    html += s;
  }
  return {"Evaluation " + path, html};
}

Section demo_section(const json& j, const std::string& path) {
  const json& m = field(j, "mobile", path);
  const json& s = field(j, "server", path);
  const json& h = field(j, "hybrid", path);
  std::vector<std::vector<std::string>> rows = {
      {"mobile (all on device)", pct(number(m, "top1", path)), thousands(m.value("macs", int64_t{0})), "0", "-"},
      {"server (all on server)", pct(number(s, "top1", path)), "0", thousands(s.value("macs", int64_t{0})), "-"}};
  if (j.contains("hybrid_untrained")) {
    rows.push_back({"hybrid, adapter untrained", pct(number(j["hybrid_untrained"], "top1", path)),
                    thousands(h.value("device_macs", int64_t{0})), thousands(h.value("server_macs", int64_t{0})),
                    thousands(h.value("split_bytes", int64_t{0}))});
  }
  rows.push_back({"hybrid, adapter trained", pct(number(h, "top1", path)), thousands(h.value("device_macs", int64_t{0})),
                  thousands(h.value("server_macs", int64_t{0})), thousands(h.value("split_bytes", int64_t{0}))});
  std::string html = para("Mobile cut " + m.value("cut", std::string("?")) + ", server cut " +
                          s.value("cut", std::string("?")) + ", adapter " + h.value("adapter", std::string("?")) + "; " +
                          std::to_string(j.value("train_images", int64_t{0})) + " training images, " +
                          std::to_string(j.value("test_images", int64_t{0})) + " test images.");
  html += table({"model", "top-1", "device MACs/image", "server MACs/image", "bytes/image at split"}, rows);
  return {"Demo " + path, html};
}

std::string page(const std::string& title, const std::vector<Section>& sections) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width, initial-scale=1\"><title>" +
      html_escape(title) +
      "</title><style>\n"
      "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px auto;"
      "max-width:1100px;padding:0 16px;color:#222;background:#fff}\n"
      "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 8px;border-bottom:1px solid #ddd;"
      "padding-bottom:4px;word-break:break-all}\n"
      "nav a{margin-right:14px}.meta{color:#666;margin:0 0 12px}\n"
      "table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;"
      "text-align:left}th{background:#f4f4f4}td{overflow-wrap:break-word;max-width:380px}td:nth-child(n+5){text-align:right}\n"
      "figure{margin:8px 0 16px}figcaption{color:#555;font-size:12px}\n"
      ".strip{overflow-x:auto;border:1px solid #eee}\n"
      "svg text{font-family:inherit}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}\n"
      ".legend,.label,.reflabel{font-size:11px}.label{fill:#222}\n"
      ".plot{fill:#fbfbfb;stroke:#ccc}.grid{stroke:#e6e6e6}.ref{stroke-dasharray:5 4;stroke-width:1.5}\n"
      ".series{stroke-width:1.8}.dot{stroke:#fff;stroke-width:.6;opacity:.85}.dot:hover{stroke:#000;stroke-width:2}\n"
      ".emphasis{fill-opacity:0;stroke:#111;stroke-width:1.8;opacity:1}\n"
      ".layer:hover,.cell:hover{stroke:#000;stroke-width:1}.bytes{stroke:#e45756;stroke-width:1.2}\n"
      ".cut{fill:#e45756}.cutmark{fill:#888}.split{stroke:#d62728;stroke-width:2;stroke-dasharray:4 3}\n"
      ".cellnum{font-size:10px;fill:#222}.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}\n"
      "</style></head><body>\n<h1>" +
      html_escape(title) + "</h1>\n<p class=\"meta\">Written by graft " + std::string(kVersion) +
      ". Self-contained: no scripts, nothing fetched; hover a mark for its figures.</p>\n<nav>";
  for (size_t i = 0; i < sections.size(); ++i) {
    s += "<a href=\"#s" + std::to_string(i + 1) + "\">" + html_escape(sections[i].title) + "</a>";
  }
  s += "</nav>\n";
  for (size_t i = 0; i < sections.size(); ++i) {
    s += "<section id=\"s" + std::to_string(i + 1) + "\"><h2>" + html_escape(sections[i].title) + "</h2>\n" +
         sections[i].html + "</section>\n";
  }
  return s + "</body></html>\n";
}

}  // namespace graft::report
