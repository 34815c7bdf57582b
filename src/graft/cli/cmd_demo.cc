// graft demo — the canonical story end to end on the bundled pair (models/mobile.onnx,
// models/server.onnx) and Fashion-MNIST: summaries, the mobile cut, the advisor refusing a cut
// inside a multi-branch block of the server, adapter design, stitching, adapter training with
// both networks frozen, evaluation, and a final table also written as JSON.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "graft/adapt/adapter.h"
#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/cut/cut.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/summary.h"
#include "graft/report/report.h"
#include "graft/stitch/stitch.h"
#include "graft/train/evaluate.h"
#include "graft/train/trainer.h"

namespace graft::cli {
namespace {

struct DemoArgs {
  std::string models = "models", data = "fashion-mnist", out = "build/demo", json;
  std::string mobile_cut = "conv_pad_6", server_cut = "mixed_6a", refuse;
  std::string adapter;  // default: a 3x3 convolution, then the designer's best conv candidate
  std::string loss = "ce:1,kd:1,feature:1";
  int64_t epochs = 8, batch = 128, limit = 0, eval_limit = 0;
  double lr = 0.05;
  uint64_t seed = 1;
  bool progress = true;
};

void heading(const std::string& text) { std::printf("\n== %s\n", text.c_str()); }

std::string pct(double fraction) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * fraction);
  return b;
}

std::string layer_name(const ir::Graph& g, int node) {
  return "'" + g.nodes[static_cast<size_t>(node)].name + "' (row " + std::to_string(ir::row_index(g, node)) + ")";
}

std::string point_text(const ir::Graph& g, const cut::CutPoint& p) {
  return layer_name(g, p.node) + " -> " + ir::shape_str(g.value(p.tensor).shape) + ", " + thousands(p.bytes) +
         " bytes/image";
}

// A model file of the pair in `dir`: STEM.onnx, or a Keras file STEM.h5, STEM.keras or STEM.json
// (read by content, like every model); a fix when there is none.
std::string bundled(const std::string& dir, const char* stem) {
  for (const char* ext : {".onnx", ".h5", ".keras", ".json"}) {
    const std::string path = (std::filesystem::path(dir) / (std::string(stem) + ext)).string();
    if (std::filesystem::exists(path)) return path;
  }
  throw Error((std::filesystem::path(dir) / stem).string() + ".onnx not found (nor .h5, .keras, .json): run "
              "from the project root, pass --models DIR, or regenerate the pair with tools/train_bundled.sh " + dir);
}

struct Described {
  ir::Graph shapes;  // batch 1, shapes inferred, no weights
  ir::Summary summary;
  std::vector<cut::CutPoint> points;
};

// "mobilenet_v1 alpha=0.25 input=32" from the graft.architecture record.
std::string architecture(const ir::Graph& g) {
  const auto j = nlohmann::json::parse(g.get_metadata(ir::kMetaArchitecture).value_or("{}"), nullptr, false);
  if (!j.is_object() || !j.contains("name")) return "architecture not recorded";
  std::string s = j["name"].is_string() ? j["name"].get<std::string>() : j["name"].dump();
  for (const auto& [k, v] : j.items()) {
    if (k == "name" || k == "seed" || k == "include_top") continue;
    s += " " + k + "=" + v.dump();
  }
  return s;
}

Described describe(const std::string& path, const char* role) {
  Described d{load_model(path, {}, 1, /*weights=*/false), {}, {}};
  d.summary = ir::summarize(d.shapes);
  d.points = cut::cut_points(d.shapes);
  const ir::Value& in = d.shapes.value(d.shapes.inputs.at(0));
  std::printf("%-7s %s: %s\n        input %s, %zu layers, %s parameters, %s MACs/image, %zu cut points\n", role,
              path.c_str(),
              d.shapes.get_metadata(ir::kMetaRole) == "hybrid" ? "head + adapter + tail" : architecture(d.shapes).c_str(),
              ir::shape_str(in.shape).c_str(), d.shapes.nodes.size(), thousands(d.summary.params).c_str(),
              thousands(d.summary.macs).c_str(), d.points.size());
  return d;
}

const cut::CutPoint& require_cut_point(const Described& d, const std::string& layer, const std::string& path) {
  const int node = cut::resolve_layer(d.shapes, layer);
  const cut::Advice a = cut::advise(d.shapes, node, d.points);
  if (!a.is_cut_point) {
    throw Error(path + ": " + layer + " is not a cut point; nearest: " +
                (a.before ? d.shapes.nodes[static_cast<size_t>(a.before->node)].name : std::string("none")) + ", " +
                (a.after ? d.shapes.nodes[static_cast<size_t>(a.after->node)].name : std::string("none")) +
                " (see graft cuts " + path + " --near " + layer + ")");
  }
  for (const auto& p : d.points) {
    if (p.tensor == a.crossing[0]) return p;
  }
  throw Error("internal: cut point " + a.crossing[0] + " not listed");
}

// The layer inside the block after `from`: between cut point `from` and the next one, the node
// whose cut would need the most tensors (the latest of equals) — where a user who counted
// layers, as in the canonical example, would try to cut.
int layer_inside_next_block(const Described& d, const cut::CutPoint& from) {
  const cut::CutPoint* next = nullptr;
  for (const auto& p : d.points) {
    if (p.node > from.node) {
      next = &p;
      break;
    }
  }
  const int end = next ? next->node : static_cast<int>(d.shapes.nodes.size());
  int best = -1;
  size_t widest = 1;
  for (int n = from.node + 1; n < end; ++n) {
    const size_t width = cut::frontier(d.shapes, n).size();
    if (width >= widest && width > 1) {
      widest = width;
      best = n;
    }
  }
  if (best < 0) throw Error("no multi-branch block after " + from.tensor + " to show the advisor on");
  return best;
}

train::Evaluation evaluate_graph(ir::Graph g, const std::string& origin, const data::Dataset& test) {
  const data::Preprocess p = data::Preprocess::from_metadata(g, origin);
  exec::SessionOptions so;
  so.optimize = true;
  exec::Session s(std::move(g), so, origin);
  return train::evaluate(s, test, p);
}

void run(const DemoArgs& a) {
  const std::string mobile_path = bundled(a.models, "mobile");
  const std::string server_path = bundled(a.models, "server");
  std::filesystem::create_directories(a.out);
  const std::string json_path = a.json.empty() ? (std::filesystem::path(a.out) / "demo.json").string() : a.json;

  heading("1. The bundled pair (trained by graft on Fashion-MNIST; see models/MANIFEST.md)");
  const Described mobile = describe(mobile_path, "mobile");
  const Described server = describe(server_path, "server");

  heading("2. Cut the mobile model at its conv_pad_6 equivalent");
  const cut::CutPoint& mcut = require_cut_point(mobile, a.mobile_cut, mobile_path);
  std::printf("%s is a cut point: %s; the device computes %s of the mobile model's %s MACs.\n",
              layer_name(mobile.shapes, mcut.node).c_str(), point_text(mobile.shapes, mcut).c_str(),
              thousands(mcut.macs_before).c_str(), thousands(mobile.summary.macs).c_str());

  heading("3. Ask the advisor about a cut inside a multi-branch block of the server model");
  const cut::CutPoint& scut = require_cut_point(server, a.server_cut, server_path);
  const int inside = a.refuse.empty() ? layer_inside_next_block(server, scut) : cut::resolve_layer(server.shapes, a.refuse);
  const cut::Advice advice = cut::advise(server.shapes, inside, server.points);
  nlohmann::json refused = {{"layer", server.shapes.nodes[static_cast<size_t>(inside)].name},
                            {"is_cut_point", advice.is_cut_point},
                            {"crossing", advice.crossing}};
  if (advice.is_cut_point) {
    std::printf("%s is a cut point (pass --refuse LAYER to show a layer inside a block).\n",
                layer_name(server.shapes, inside).c_str());
  } else {
    std::printf("Refused: %s is inside a multi-branch block; %zu tensors cross a cut after it:\n",
                layer_name(server.shapes, inside).c_str(), advice.crossing.size());
    for (const auto& t : advice.crossing) {
      const ir::Value& v = server.shapes.value(t);
      std::printf("    %-28s %s from %s\n", t.c_str(), ir::shape_str(v.shape).c_str(),
                  layer_name(server.shapes, v.producer).c_str());
    }
    std::printf("  Chaining one tensor into the next layers would wire the block's branches wrong (the\n"
                "  canonical example's \"Dimensions must be equal\" error). Nearest cut points:\n");
    if (advice.before) std::printf("    before: %s\n", point_text(server.shapes, *advice.before).c_str());
    if (advice.after) std::printf("    after:  %s\n", point_text(server.shapes, *advice.after).c_str());
    if (advice.before) refused["cut_point_before"] = advice.before->tensor;
    if (advice.after) refused["cut_point_after"] = advice.after->tensor;
  }
  std::printf("Using the cut point %s: the server runs %s of its %s MACs from there.\n",
              point_text(server.shapes, scut).c_str(), thousands(scut.macs_after).c_str(),
              thousands(server.summary.macs).c_str());

  heading("4. Design the adapter");
  const adapt::Shape3 from = adapt::shape_of(mobile.shapes, mcut.tensor);
  const adapt::Target to = adapt::target_of(server.shapes, scut.tensor);
  std::printf("From %s (mobile) to %s (server; ends %s: %s). Best candidate of each family:\n",
              from.str().c_str(), to.shape.str().c_str(),
              to.activation == adapt::Activation::kNone ? "linear" : "activated", to.why.c_str());
  std::vector<std::vector<std::string>> rows;
  std::set<std::string> families;
  for (const auto& c : adapt::design(from, to)) {
    if (!families.insert(c.family).second) continue;
    rows.push_back({c.family, c.spec(), thousands(c.params), thousands(c.macs)});
  }
  print_table({"Family", "Spec", ">Params", ">MACs"}, rows);
  // The default adapter: one 3x3 convolution at the source's resolution (twice its channels,
  // BatchNorm, ReLU) for capacity to re-map the mobile features, then the designer's best
  // convolution to the target's shape.
  std::string spec = a.adapter;
  if (spec.empty()) {
    spec = "conv:k=3,s=1,p=1,c=" + std::to_string(2 * from.c) + ";bn;relu;" + adapt::design(from, to, "conv").at(0).spec();
  }
  const adapt::Adapter chosen = adapt::choose(spec, from, to);
  std::printf("Chosen%s: %s — %s parameters, %s MACs/image.\n", a.adapter.empty() ? " (a 3x3 convolution, then the best conv candidate)" : " (--adapter)",
              chosen.spec().c_str(), thousands(chosen.params).c_str(), thousands(chosen.macs).c_str());

  heading("5. Stitch");
  stitch::Options so(chosen.spec());
  so.seed = a.seed;
  so.head_path = mobile_path;
  so.tail_path = server_path;
  ir::Graph hybrid = stitch::stitch(read_model(mobile_path), a.mobile_cut, read_model(server_path),
                                    server.shapes.nodes[static_cast<size_t>(scut.node)].name, so);
  const std::string untrained_path = (std::filesystem::path(a.out) / "hybrid_untrained.onnx").string();
  ir::save(hybrid, untrained_path);
  const Described shape = describe(untrained_path, "hybrid");
  const auto record = nlohmann::json::parse(hybrid.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
  const std::string split = record.is_object() ? record.value("split_point", "") : "";
  const cut::CutPoint* at_split = nullptr;
  for (const auto& p : shape.points) {
    if (p.tensor == split) at_split = &p;
  }
  if (at_split == nullptr) throw Error(untrained_path + ": split point '" + split + "' is not a cut point of the hybrid");

  heading("6. Train the adapter, both networks frozen");
  const data::Dataset train_data = data::head(data::open_dataset(a.data, "train"), a.limit);
  const data::Dataset test = data::head(data::open_dataset(a.data, "test"), a.eval_limit);
  const train::Evaluation untrained = evaluate_graph(hybrid, untrained_path, test);
  train::TrainOptions o;
  o.read_model = [](const std::string& m) { return read_model(m); };
  o.loss = a.loss;
  o.epochs = a.epochs;
  o.batch = a.batch;
  o.seed = a.seed;
  o.optimizer.lr = a.lr;
  o.optimizer.nesterov = true;
  o.warmup = 100;
  o.progress = a.progress;
  const std::string log_path = (std::filesystem::path(a.out) / "train.jsonl").string();
  o.log_jsonl = log_path;
  std::printf("%lld images x %lld epochs, loss %s, SGD (Nesterov) lr %g cosine, batch %lld; teacher for kd: %s\n",
              static_cast<long long>(train_data.size()), static_cast<long long>(a.epochs), a.loss.c_str(), a.lr,
              static_cast<long long>(a.batch), server_path.c_str());
  std::fflush(stdout);
  const data::Preprocess hp = data::Preprocess::from_metadata(hybrid, untrained_path);
  const train::TrainResult r = train::fit(hybrid, train_data, hp, o);
  const std::string trained_path = (std::filesystem::path(a.out) / "hybrid.onnx").string();
  ir::save(hybrid, trained_path);
  std::printf("trained %zu adapter initializers in %.1f s (%.0f images/s%s); wrote %s\n", r.trained.size(), r.seconds,
              r.images_per_second, r.used_cache ? ", feature cache" : "", trained_path.c_str());

  heading("7. Evaluate on the test split");
  const train::Evaluation em = evaluate_graph(read_model(mobile_path), mobile_path, test);
  const train::Evaluation es = evaluate_graph(read_model(server_path), server_path, test);
  const train::Evaluation eh = evaluate_graph(read_model(trained_path), trained_path, test);
  std::printf("%lld test images\n\n", static_cast<long long>(test.size()));
  rows = {{"mobile (all on device)", pct(em.top1), thousands(mobile.summary.macs), "0", "-"},
          {"server (all on server)", pct(es.top1), "0", thousands(server.summary.macs), "-"},
          {"hybrid, adapter untrained", pct(untrained.top1), thousands(at_split->macs_before),
           thousands(at_split->macs_after), thousands(at_split->bytes)},
          {"hybrid, adapter trained", pct(eh.top1), thousands(at_split->macs_before), thousands(at_split->macs_after),
           thousands(at_split->bytes)}};
  print_table({"Model", ">Top-1", ">Device MACs/image", ">Server MACs/image", ">Bytes/image at split"}, rows);
  std::printf("\nSplit at '%s' %s (float32). Hybrid vs server: %+.2f points; vs mobile: %+.2f points.\n",
              split.c_str(), ir::shape_str(shape.shapes.value(split).shape).c_str(), 100 * (eh.top1 - es.top1),
              100 * (eh.top1 - em.top1));

  nlohmann::json j = {
      {"data", a.data},
      {"test_images", test.size()},
      {"train_images", train_data.size()},
      {"mobile", {{"path", mobile_path}, {"top1", em.top1}, {"top5", em.top5}, {"macs", mobile.summary.macs},
                  {"params", mobile.summary.params}, {"cut", mcut.tensor}}},
      {"server", {{"path", server_path}, {"top1", es.top1}, {"top5", es.top5}, {"macs", server.summary.macs},
                  {"params", server.summary.params}, {"cut", scut.tensor}}},
      {"refused_cut", refused},
      {"hybrid_untrained", {{"path", untrained_path}, {"top1", untrained.top1}, {"top5", untrained.top5}}},
      {"hybrid",
       {{"path", trained_path}, {"top1", eh.top1}, {"top5", eh.top5}, {"device_macs", at_split->macs_before},
        {"server_macs", at_split->macs_after}, {"split_bytes", at_split->bytes}, {"split_tensor", split},
        {"adapter", chosen.spec()}, {"adapter_params", chosen.params}, {"loss", a.loss}, {"epochs", a.epochs},
        {"train_seconds", r.seconds}, {"train_images_per_second", r.images_per_second}, {"feature_cache", r.used_cache}}}};
  write_file_atomic(json_path, j.dump(1) + "\n");
  std::printf("Wrote %s\n", json_path.c_str());

  // The evaluations (confusion matrices) and the report: the hybrid drawn with its split, the
  // training curves, the confusion matrices, the final table.
  nlohmann::json evals = {{"data", a.data}, {"split", "test"}, {"count", test.size()}, {"models", nlohmann::json::array()}};
  if (!test.classes.empty()) evals["classes"] = test.classes;
  for (const auto& [role, path, e] : {std::tuple{"hybrid", trained_path, &eh}, std::tuple{"mobile", mobile_path, &em},
                                      std::tuple{"server", server_path, &es}}) {
    nlohmann::json m = train::to_json(*e);
    m["role"] = role;
    m["model"] = path;
    evals["models"].push_back(m);
  }
  const std::string eval_path = (std::filesystem::path(a.out) / "eval.json").string();
  write_file_atomic(eval_path, evals.dump() + "\n");
  std::vector<nlohmann::json> steps;
  {
    std::istringstream in(read_file(log_path));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) steps.push_back(nlohmann::json::parse(line));
    }
  }
  const std::string report_path = (std::filesystem::path(a.out) / "report.html").string();
  write_file_atomic(report_path, report::page("graft demo: " + mobile_path + " + " + server_path,
                                              {report::demo_section(j, json_path),
                                               report::model_section(shape.shapes, trained_path),
                                               report::training_section(steps, log_path),
                                               report::eval_section(evals, eval_path)}));
  std::printf("Wrote %s (open it in a browser)\n", report_path.c_str());
}

}  // namespace

Command add_demo_command(CLI::App& root) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* app = root.add_subcommand(
      "demo", "The main job: cut, advise, design, stitch, train and evaluate a hybrid of the bundled pair");
  // scripts/demo.sh passes --models and --out first; the user's own values (later) win.
  app->add_option("--models", args->models, "Folder with mobile.onnx and server.onnx, or Keras files mobile/server.h5, .keras or .json (default models)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app->add_option("--data", args->data, "Dataset (default fashion-mnist)");
  app->add_option("--out", args->out, "Folder for the hybrids and demo.json (default build/demo)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app->add_option("--json", args->json, "Where to write the results (default OUT/demo.json)");
  app->add_option("--mobile-cut", args->mobile_cut, "Mobile cut layer (default conv_pad_6)");
  app->add_option("--server-cut", args->server_cut, "Server cut point (default mixed_6a)");
  app->add_option("--refuse", args->refuse, "Server layer to show the advisor on (default: inside the next block)");
  app->add_option("--adapter", args->adapter,
                  "Adapter family or spec (default: a 3x3 convolution to twice the source's channels, then the "
                  "designer's best conv candidate)");
  app->add_option("--loss", args->loss, "Adapter training loss (default ce:1,kd:1,feature:1)");
  app->add_option("--epochs", args->epochs, "Adapter training epochs (default 8)")->check(CLI::PositiveNumber);
  app->add_option("--batch", args->batch, "Batch size (default 128)")->check(CLI::PositiveNumber);
  app->add_option("--lr", args->lr, "Peak learning rate (default 0.05)")->check(CLI::PositiveNumber);
  app->add_option("--seed", args->seed, "Adapter initialisation and shuffling seed (default 1)");
  app->add_option("--limit", args->limit, "Train on the first N training images only")->check(CLI::PositiveNumber);
  app->add_option("--eval-limit", args->eval_limit, "Evaluate on the first N test images only")
      ->check(CLI::PositiveNumber);
  app->add_flag("!--no-progress", args->progress, "No progress bar");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
