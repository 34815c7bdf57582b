// graft report INPUT… -o report.html — one self-contained HTML page (inline SVG and CSS, no
// script) from models, hybrids, search results, plans, training logs and evaluations
// (graft/report/report.h); each input is recognised by its content.
#include <cstdio>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/report/report.h"

namespace graft::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> inputs;
  std::string out, title = "graft report";
};

// The lines of a training log (graft train --log): JSON objects with "step" and "loss"; empty
// if `bytes` is not one.
std::vector<nlohmann::json> training_steps(const std::string& bytes) {
  std::vector<nlohmann::json> steps;
  std::istringstream in(bytes);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j.contains("loss")) return {};
    steps.push_back(std::move(j));
  }
  return steps;
}

report::Section section(const std::string& path) {
  const std::string bytes = read_file(path);
  const size_t start = bytes.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && bytes[start] == '{') {
    const nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
    if (j.is_discarded()) {
      const std::vector<nlohmann::json> steps = training_steps(bytes);
      if (!steps.empty()) return report::training_section(steps, path);
      throw Error(path + ": neither JSON nor a training log (JSON lines)");
    }
    const std::string kind = report::kind_of(j);
    if (kind == "search") return report::search_section(j, path);
    if (kind == "plan") return report::plan_section(j, path);
    if (kind == "eval") return report::eval_section(j, path);
    if (kind == "demo") return report::demo_section(j, path);
    if (j.contains("step") && j.contains("loss")) return report::training_section({j}, path);
    if (j.contains("format") || j.contains("modelTopology") || j.contains("class_name")) {
      return report::model_section(load_model(path, {}, 1, /*weights=*/false), path);  // a Keras JSON
    }
    throw Error(path + ": a JSON document graft report does not know: give a search result (graft search -o), a "
                "plan (graft plan --json), an evaluation (graft eval --json), a training log (graft train --log) or "
                "demo.json");
  }
  return report::model_section(load_model(path, {}, 1, /*weights=*/false), path);
}

void run(const ReportArgs& a) {
  std::vector<report::Section> sections;
  for (const auto& in : a.inputs) {
    try {
      sections.push_back(section(in));
    } catch (const nlohmann::json::exception& e) {
      throw Error(in + ": a field has the wrong type or is missing (" + e.what() + ")");
    }
  }
  write_file_atomic(a.out, report::page(a.title, sections));
  std::printf("Wrote %s (%zu section%s)\n", a.out.c_str(), sections.size(), sections.size() == 1 ? "" : "s");
}

}  // namespace

Command add_report_command(CLI::App& root) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* app = root.add_subcommand(
      "report", "One self-contained HTML page (inline SVG, no script) from models, search results, plans, logs, evals");
  app->add_option("inputs", args->inputs,
                  "Models or hybrids, graft search results, graft plan --json output, graft train --log files, "
                  "graft eval --json output, demo.json")
      ->required();
  app->add_option("-o,--output", args->out, "The HTML file to write")->required();
  app->add_option("--title", args->title, "The page's title (default \"graft report\")");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
