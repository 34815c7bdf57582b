// Shared pieces of the graft subcommands: the command registry, model loading with shapes,
// and output formatting.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/core/stats.h"
#include "graft/ir/graph.h"
#include "graft/keras/keras.h"

namespace graft::cli {

// A subcommand: its CLI11 app (options bound to its own state) and what to run when chosen.
struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
};

Command add_summary_command(CLI::App& root);
Command add_zoo_command(CLI::App& root);
Command add_run_command(CLI::App& root);
Command add_cuts_command(CLI::App& root);
Command add_cut_command(CLI::App& root);
Command add_design_command(CLI::App& root);
Command add_stitch_command(CLI::App& root);
Command add_eval_command(CLI::App& root);
Command add_train_command(CLI::App& root);
Command add_demo_command(CLI::App& root);
Command add_bench_command(CLI::App& root);
Command add_split_command(CLI::App& root);
Command add_serve_command(CLI::App& root);
Command add_infer_command(CLI::App& root);
Command add_convert_command(CLI::App& root);
Command add_profile_command(CLI::App& root);
Command add_plan_command(CLI::App& root);
Command add_search_command(CLI::App& root);
Command add_report_command(CLI::App& root);

// "MODEL.onnx@LAYER": the path and the layer reference (split at the last '@').
struct ModelRef {
  std::string path, layer;
};
ModelRef parse_model_ref(const std::string& text, const char* option);

// The root options --keras-config [MODEL=]JSON (repeatable) and --keras-preprocess MODE, which
// apply to every Keras model a command reads.
void add_keras_options(CLI::App& root);
// The Keras import options for the model at `path` (its --keras-config, if any).
keras::ImportOptions keras_options(const std::string& path);
// Reads any model graft takes (ONNX, or a Keras file with the command line's Keras options).
// weights=false: ONNX initializers as meta tensors (see ir::LoadOptions).
ir::Graph read_model(const std::string& path, bool weights = true);

// Loads MODEL, applies --input-shape values, pins a symbolic batch dimension to `batch` (when
// batch > 0) and infers shapes. weights=false loads shapes only (see ir::LoadOptions).
ir::Graph load_model(const std::string& path, const std::vector<std::string>& input_shapes,
                     int64_t batch = 1, bool weights = true);

// Adds the repeatable --input-shape option.
void add_input_shape_option(CLI::App* app, std::vector<std::string>* shapes);

// A shape as JSON: a list of sizes (symbols as strings, unknown as null), or null if unknown.
nlohmann::json shape_json(const std::optional<ir::Shape>& shape);

// The top k classes of each row of a (batch, classes) output, as JSON:
// [[{"class", "label", "score"}, …], …] (label "" where `labels` has none).
nlohmann::json top_k(const at::Tensor& scores, int64_t k, const std::vector<std::string>& labels);
// Prints one item's top-k rows (as top_k gives them) under its name.
void print_top_k(const std::string& item, const nlohmann::json& rows);

// The bearer token from --token or --token-file (trailing whitespace stripped). Error if both
// are given or the file is empty; "" if neither.
std::string bearer_token(const std::string& token, const std::string& token_file);

// The sizes of graph input `name` of `model` for a run at `batch`: an Error naming the model and
// the input, with the fix, when its shape is unknown or its batch is fixed to another value.
std::vector<int64_t> input_sizes(const ir::Graph& graph, const std::string& model, const std::string& name,
                                 int64_t batch);

// 4253864 -> "4,253,864".
std::string thousands(int64_t n);

// Prints rows as a table with a header and a rule, columns padded to their widest cell.
// Columns whose header starts with '>' are right-aligned (the '>' is not printed).
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

}  // namespace graft::cli

namespace graft::train {
class ProcessGroup;  // graft/train/distributed.h: kept out of this widely included header
}

namespace graft::cli {

// Data-parallel ranks (`--dist`, `--dist-timeout`), for train, eval and search.
struct DistArgs {
  std::string mode = "env";
  double timeout = 300;
};
void add_dist_options(CLI::App* app, DistArgs* args);
// The process group the launcher (torchrun, Slurm) or the user set up, or nullptr for one process.
std::shared_ptr<train::ProcessGroup> connect_dist(const DistArgs& args);

}  // namespace graft::cli
