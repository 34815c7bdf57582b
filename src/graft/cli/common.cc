#include "graft/cli/common.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/ir/onnx_io.h"
#include "graft/exec/session.h"
#include "graft/ir/shapes.h"
#include "graft/train/distributed.h"

namespace graft::cli {

namespace {

struct KerasFlags {
  std::vector<std::string> configs;
  std::string preprocess;
};
KerasFlags& keras_flags() {
  static KerasFlags flags;
  return flags;
}

}  // namespace

void add_keras_options(CLI::App& root) {
  root.add_option("--keras-config", keras_flags().configs,
                  "Architecture JSON (model.to_json()) for weights-only Keras HDF5 files: JSON, or "
                  "WEIGHTS.h5=JSON for one file (repeatable; also after the subcommand)");
  root.add_option("--keras-preprocess", keras_flags().preprocess,
                  "Input preprocessing of Keras models: tf, caffe, torch or none (default: "
                  "recognised from keras.applications model names)")
      ->check(CLI::IsMember({"tf", "caffe", "torch", "none"}));
}

keras::ImportOptions keras_options(const std::string& path) {
  keras::ImportOptions o;
  o.preprocess = keras_flags().preprocess;
  std::string fallback;
  for (const auto& c : keras_flags().configs) {
    const size_t eq = c.find('=');
    if (eq == std::string::npos) {
      fallback = c;
    } else if (c.substr(0, eq) == path) {
      o.config_path = c.substr(eq + 1);
    }
  }
  if (o.config_path.empty() && !fallback.empty() &&
      keras::detect(path) == keras::Format::kHdf5) {
    o.config_path = fallback;
  }
  return o;
}

ir::Graph read_model(const std::string& path, bool weights) {
  ir::LoadOptions options;
  options.weights = weights;
  return keras::load_model(path, options, keras_options(path));
}

ir::Graph load_model(const std::string& path, const std::vector<std::string>& input_shapes,
                     int64_t batch, bool weights) {
  std::vector<ir::InputShape> shapes;
  for (const auto& s : input_shapes) shapes.push_back(ir::parse_input_shape(s));
  ir::LoadOptions options;
  options.weights = weights;
  keras::ImportOptions ko = keras_options(path);
  for (const auto& s : shapes) ko.input_shapes[s.name] = s.dims;
  auto load = [&] {
    ir::Graph g = keras::load_model(path, options, ko);
    ir::set_input_shapes(g, shapes);
    if (batch > 0) ir::fix_batch(g, batch);
    with_context(path, [&] { ir::infer_shapes(g); });
    return g;
  };
  ir::Graph g = load();
  if (exec::has_incomplete_shapes(g)) {
    // Static inference left shapes unknown: run the graph on zeros to find them (with weights).
    if (!weights) {
      options.weights = true;
      g = load();
    }
    with_context(path, [&] { exec::complete_shapes(g); });
  }
  return g;
}

nlohmann::json top_k(const at::Tensor& scores, int64_t k, const std::vector<std::string>& labels) {
  if (scores.dim() != 2 || !scores.is_floating_point()) {
    throw Error("top-k needs a (batch, classes) output, not " + c10::str(scores.sizes()));
  }
  k = std::min<int64_t>(k, scores.size(1));
  auto [values, classes] = at::topk(scores.detach(), k, 1);
  nlohmann::json all = nlohmann::json::array();
  for (int64_t n = 0; n < scores.size(0); ++n) {
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t r = 0; r < k; ++r) {
      const int64_t c = classes[n][r].item<int64_t>();
      rows.push_back({{"class", c}, {"label", c < static_cast<int64_t>(labels.size()) ? labels[c] : ""},
                      {"score", values[n][r].item<double>()}});
    }
    all.push_back(rows);
  }
  return all;
}

void print_top_k(const std::string& item, const nlohmann::json& rows) {
  std::printf("%s\n", item.c_str());
  for (const auto& r : rows) {
    std::printf("  %5lld  %-20s %.6f\n", static_cast<long long>(r["class"].get<int64_t>()),
                r["label"].get<std::string>().c_str(), r["score"].get<double>());
  }
}

std::vector<int64_t> input_sizes(const ir::Graph& g, const std::string& model, const std::string& name,
                                 int64_t batch) {
  const ir::Value& v = g.value(name);
  const auto sizes = ir::known_sizes(v.shape);
  if (!sizes || sizes->empty()) {
    throw Error(model + ": input '" + name + "' has shape " + ir::shape_str(v.shape) + "; fix it with --input-shape " +
                name + "=1x3x224x224 (for example)");
  }
  if ((*sizes)[0] != batch) {
    throw Error(model + ": input '" + name + "' has a fixed batch of " + std::to_string((*sizes)[0]) + ", not " +
                std::to_string(batch) + "; use --batch " + std::to_string((*sizes)[0]) + " or --input-shape " + name +
                "=" + std::to_string(batch) + "x…");
  }
  return *sizes;
}

std::string bearer_token(const std::string& token, const std::string& token_file) {
  if (!token.empty() && !token_file.empty()) throw Error("give --token or --token-file, not both");
  if (token_file.empty()) return token;
  std::string t = read_file(token_file);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  if (t.empty()) throw Error(token_file + ": the token file is empty");
  return t;
}

ModelRef parse_model_ref(const std::string& text, const char* option) {
  const size_t at = text.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == text.size()) {
    throw Error(std::string("bad ") + option + " '" + text +
                "': expected MODEL.onnx@LAYER (a row index, a node name or tensor:NAME)");
  }
  return {text.substr(0, at), text.substr(at + 1)};
}

void add_input_shape_option(CLI::App* app, std::vector<std::string>* shapes) {
  app->add_option("--input-shape", *shapes,
                  "Fix an input's dimensions: [NAME=]1x3x224x224 (repeatable)");
}

nlohmann::json shape_json(const std::optional<ir::Shape>& shape) {
  if (!shape) return nullptr;
  nlohmann::json j = nlohmann::json::array();
  for (const ir::Dim& d : *shape) {
    if (d.known()) {
      j.push_back(d.value);
    } else if (!d.param.empty()) {
      j.push_back(d.param);
    } else {
      j.push_back(nullptr);
    }
  }
  return j;
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  const size_t cols = header.size();
  std::vector<size_t> width(cols, 0);
  std::vector<bool> right(cols, false);
  std::vector<std::string> names(cols);
  for (size_t c = 0; c < cols; ++c) {
    right[c] = !header[c].empty() && header[c][0] == '>';
    names[c] = right[c] ? header[c].substr(1) : header[c];
    width[c] = names[c].size();
  }
  for (const auto& r : rows) {
    for (size_t c = 0; c < cols && c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cols; ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      const std::string pad(width[c] - std::min(width[c], cell.size()), ' ');
      out += right[c] ? pad + cell : cell + (c + 1 < cols ? pad : "");
      if (c + 1 < cols) out += "  ";
    }
    std::printf("%s\n", out.c_str());
  };
  line(names);
  size_t total = 0;
  for (size_t c = 0; c < cols; ++c) total += width[c] + (c + 1 < cols ? 2 : 0);
  std::printf("%s\n", std::string(total, '-').c_str());
  for (const auto& r : rows) line(r);
}

void add_dist_options(CLI::App* app, DistArgs* args) {
  app->add_option("--dist", args->mode,
                  "Data-parallel ranks from the environment: env (torchrun's RANK, WORLD_SIZE, MASTER_ADDR, "
                  "MASTER_PORT; the default), slurm (SLURM_PROCID, SLURM_NTASKS), none")
      ->check(CLI::IsMember({"env", "slurm", "none"}));
  app->add_option("--dist-timeout", args->timeout,
                  "Seconds a rank waits for the others (joining, each collective) before stopping (default 300)")
      ->check(CLI::PositiveNumber);
}

std::shared_ptr<train::ProcessGroup> connect_dist(const DistArgs& args) {
  if (args.mode == "none") return nullptr;
  const auto env = train::dist_env(args.mode);
  return env ? train::ProcessGroup::connect(*env, args.timeout) : nullptr;
}

}  // namespace graft::cli
