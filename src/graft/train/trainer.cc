#include "graft/train/trainer.h"

#include "graft/train/losses.h"
#include "graft/train/distributed.h"
#include "graft/data/loader.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/core/log.h"
#include "graft/cut/cut.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"

namespace graft::train {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kCheckpointTag = "graft.checkpoint";

std::string duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

// A checkpoint is two files, the model (PATH) and the optimizer's state (PATH.state), each written
// atomically and tagged alike with the epochs done. A kill between the two writes would leave a
// model beside another epoch's state, so the state before stays as PATH.state.prev until the
// model is written; --resume takes the state whose tag matches the model's.
void save_checkpoint(const ir::Graph& model, const Optimizer& opt, const std::string& path, int64_t epochs_done,
                     int64_t step, const std::vector<double>& losses) {
  const std::string tag = nlohmann::json({{"epochs_done", epochs_done}, {"step", step}}).dump();
  ir::Graph state;
  state.name = "graft_optimizer_state";
  for (const auto& [name, t] : opt.state()) state.initializers[name] = t.detach().clone();
  state.initializers["losses"] = at::tensor(losses, at::kDouble);
  state.set_metadata(kCheckpointTag, tag);
  const std::string state_path = path + ".state", prev = state_path + ".prev";
  if (std::filesystem::exists(state_path) && std::rename(state_path.c_str(), prev.c_str()) != 0) {
    throw Error(state_path + ": cannot keep the previous optimizer state as " + prev + ": " + std::strerror(errno));
  }
  ir::save(state, state_path);
  ir::Graph tagged = model;  // shares the tensors
  tagged.set_metadata(kCheckpointTag, tag);
  ir::save(tagged, path);
}

// The optimizer state that belongs to checkpoint `path` (whose model `saved` is).
ir::Graph checkpoint_state(const std::string& path, const ir::Graph& saved) {
  const std::optional<std::string> tag = saved.get_metadata(kCheckpointTag);
  for (const std::string& candidate : {path + ".state", path + ".state.prev"}) {
    if (!std::filesystem::exists(candidate)) continue;
    ir::Graph state = ir::load(candidate);
    if (!tag || state.get_metadata(kCheckpointTag) == tag) return state;
  }
  throw Error(path + ": no optimizer state of its epoch beside it (" + path + ".state); resume from a checkpoint "
              "graft wrote, with its .state file");
}

}  // namespace

std::string logits_of(const ir::Graph& g) {
  const std::string& out = g.outputs.at(0);
  const ir::Value& v = g.value(out);
  if (v.producer >= 0) {
    const ir::Node& n = g.nodes[static_cast<size_t>(v.producer)];
    if (n.op_type == "Softmax" || n.op_type == "LogSoftmax") return n.inputs[0];
  }
  return out;
}

std::vector<std::string> select_trainable(const ir::Graph& g, const std::string& selection) {
  std::set<std::string> constants = ir::constant_initializers(g);
  // BatchNormalization statistics are updated by the forward pass, never by gradients.
  std::set<std::string> statistics;
  for (const auto& n : g.nodes) {
    if (n.op_type == "BatchNormalization" && n.inputs.size() >= 5) {
      statistics.insert(n.inputs[3]);
      statistics.insert(n.inputs[4]);
    }
  }
  std::vector<std::string> out;
  // Scalars are left out of `all` and REGEX selections (they are constants a graph computes
  // with); graft.trainable lists parameters by name, and a one-channel BatchNorm's scale is one.
  auto eligible = [&](const std::string& name, bool scalars) {
    const at::Tensor& t = g.initializers.at(name);
    return t.is_floating_point() && !constants.count(name) && !statistics.count(name) && (scalars || t.numel() > 1);
  };
  if (selection == "adapter") {
    for (const auto& name : ir::metadata_string_list(g, ir::kMetaTrainable)) {
      if (!g.initializers.count(name)) throw Error("graft.trainable names '" + name + "', which the model lacks");
      if (eligible(name, /*scalars=*/true)) out.push_back(name);
    }
    if (out.empty()) {
      throw Error("the model lists no trainable adapter (graft.trainable); train a stitched hybrid, or "
                  "choose --train all or --train REGEX");
    }
    return out;
  }
  std::regex re;
  if (selection != "all") {
    try {
      re = std::regex(selection);
    } catch (const std::regex_error& e) {
      throw Error("bad --train regular expression '" + selection + "': " + e.what());
    }
  }
  for (const auto& [name, t] : g.initializers) {
    if (eligible(name, /*scalars=*/false) && (selection == "all" || std::regex_search(name, re))) out.push_back(name);
  }
  if (out.empty()) throw Error("--train " + selection + " selects no trainable initializer");
  return out;
}

std::string auto_loss(const ir::Graph& model, const TrainOptions& o) {
  if (model.get_metadata(ir::kMetaRole) != "hybrid") return "ce";
  if (o.precomputed || !o.teacher.empty()) return "ce:1,kd:1,feature:1";
  const auto record = nlohmann::json::parse(model.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
  if (!record.is_object() || !record.contains("tail") || !record["tail"].is_object()) return "ce";
  const std::string source = record["tail"].value("source", "");
  std::error_code ec;
  return !source.empty() && std::filesystem::is_regular_file(source, ec) ? "ce:1,kd:1,feature:1" : "ce";
}

TrainResult fit(ir::Graph& model, const data::Dataset& d, const data::Preprocess& p, const TrainOptions& options) {
  TrainOptions o = options;
  if (o.loss == "auto") o.loss = auto_loss(model, o);
  if (o.epochs < 1 || o.batch < 1) throw Error("epochs and batch must be positive");
  const bool dist = o.group && o.group->world() > 1;
  const int rank = dist ? o.group->rank() : 0, world = dist ? o.group->world() : 1;
  if (dist && o.precomputed) throw Error("a precomputed feature cache cannot be shared by data-parallel ranks");
  TrainResult r;
  r.loss = o.loss;
  r.trained = select_trainable(model, o.train);
  const std::set<std::string> trainable(r.trained.begin(), r.trained.end());
  std::set<std::string> train_nodes;
  for (const auto& n : model.nodes) {
    const bool bn = n.op_type == "BatchNormalization" &&
                    (trainable.count(n.inputs[1]) || trainable.count(n.inputs[2]));
    if (bn || (n.op_type == "Dropout" && o.train == "all")) train_nodes.insert(n.name);
  }
  int64_t start_epoch = 0, step = 0;
  if (!o.resume.empty()) {
    ir::Graph saved = ir::load(o.resume);
    for (auto& [name, t] : model.initializers) {
      auto it = saved.initializers.find(name);
      if (it == saved.initializers.end() || !it->second.sizes().equals(t.sizes())) {
        throw Error(o.resume + ": not a checkpoint of this model (initializer '" + name + "' differs)");
      }
      t.copy_(it->second);
    }
  }

  // A frozen head: the hybrid's head output, when nothing before it trains. It runs on the
  // optimised inference path (no autograd), and its outputs are computed once (the feature
  // cache) when every epoch feeds it the same images.
  std::string cache_tensor;
  if (model.get_metadata(ir::kMetaRole) == "hybrid") {
    const auto record = nlohmann::json::parse(model.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
    if (record.is_object() && record.contains("head") && record["head"].contains("hybrid_tensors")) {
      const std::string c = record["head"]["hybrid_tensors"][0];
      const ir::Graph h = cut::head(model, {c});
      bool frozen = true;
      for (const auto& [name, t] : h.initializers) frozen = frozen && !trainable.count(name);
      for (const auto& n : h.nodes) frozen = frozen && !train_nodes.count(n.name);
      if (frozen) cache_tensor = c;
    }
  }
  const std::string input = model.inputs.at(0);
  const std::string logits = logits_of(model);

  // The server model as teacher, for the feature and kd losses.
  const std::map<std::string, double> weights = parse_loss(o.loss);
  const bool want_feature = weights.count("feature") && weights.at("feature") > 0;
  const bool want_kd = weights.count("kd") && weights.at("kd") > 0;
  std::unique_ptr<exec::Session> teacher;
  data::Preprocess teacher_p;
  std::vector<std::string> teacher_features, hybrid_features;
  std::string teacher_logits, teacher_path;
  std::optional<ir::Graph> teacher_session_graph;
  if (want_feature || want_kd) {
    const auto record = nlohmann::json::parse(model.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
    if (model.get_metadata(ir::kMetaRole) != "hybrid" || !record.is_object() || !record.contains("tail")) {
      throw Error("the feature and kd losses need a stitched hybrid (its server model is the teacher)");
    }
    if (o.precomputed) {
      teacher_logits = o.precomputed->teacher_logits;
    } else {
      const std::string path = !o.teacher.empty() ? o.teacher : record["tail"].value("source", "");
      if (path.empty()) throw Error("the hybrid does not name its server model; give the teacher model");
      teacher_session_graph =
          with_context("teacher", [&] { return o.read_model ? o.read_model(path) : ir::load(path); });
      ir::Graph& tg = *teacher_session_graph;
      teacher_path = path;
      teacher_p = data::Preprocess::from_metadata(tg, path);
      teacher_logits = logits_of(tg);
    }
    for (const auto& t : record["tail"]["tensors"]) teacher_features.push_back(t);
    for (const auto& t : record["tail"]["hybrid_tensors"]) hybrid_features.push_back(t);
  }
  std::vector<std::string> teacher_wanted = teacher_features;
  if (want_kd) teacher_wanted.push_back(teacher_logits);
  if (teacher_session_graph) {
    exec::SessionOptions to;
    to.optimize = true;
    to.keep = std::set<std::string>(teacher_wanted.begin(), teacher_wanted.end());
    teacher = std::make_unique<exec::Session>(std::move(*teacher_session_graph), to, teacher_path);
  }
  if (o.augment && (want_feature || want_kd)) {
    throw Error("--augment with the feature or kd loss: the teacher would score other images than the augmented "
                "ones the hybrid sees; train with --loss ce, or without --augment");
  }
  auto teach = [&](const at::Tensor& images) {
    const std::string& tin = teacher->graph().inputs.at(0);
    exec::TensorMap out = teacher->run({{tin, data::preprocess_batch(images, teacher_p)}}, teacher_wanted);
    // Out of inference mode: the losses save their targets for backward.
    for (auto& [name, t] : out) t = t.clone();
    return out;
  };
  std::map<std::string, at::Tensor> targets_cache;
  at::Tensor features;
  exec::SessionOptions so;
  so.training = true;
  so.trainable = trainable;
  so.train_nodes = train_nodes;
  if (dist) so.replica_sum = o.group->replica_sum();
  std::unique_ptr<exec::Session> session;
  std::string feed = input;
  // The feature cache: the head's outputs (and the teacher's targets) for the dataset rows `rows`,
  // in that order.
  std::unique_ptr<exec::Session> head_cache;
  bool cache_logged = false;
  auto fill_cache = [&](const at::Tensor& rows) {
    const auto cache_start = Clock::now();
    std::vector<at::Tensor> parts;
    std::map<std::string, std::vector<at::Tensor>> teacher_parts;
    for (int64_t i = 0; i < rows.numel(); i += o.batch) {
      const at::Tensor raw = d.images.index_select(0, rows.slice(0, i, std::min(i + o.batch, rows.numel())));
      parts.push_back(head_cache->run({{input, data::preprocess_batch(raw, p)}}, {cache_tensor}).at(cache_tensor));
      if (teacher) {
        for (auto& [name, t] : teach(raw)) teacher_parts[name].push_back(t);
      }
    }
    features = at::cat(parts);
    targets_cache.clear();
    for (auto& [name, v] : teacher_parts) targets_cache[name] = at::cat(v);
    if (rank == 0 && !cache_logged) {  // data-parallel ranks refill it every epoch: said once
      log::info("feature cache: " + std::to_string(rows.numel()) + " images through the head in " +
                std::to_string(std::chrono::duration<double>(Clock::now() - cache_start).count()) + " s" +
                (dist ? " (this rank's share of the epoch, each epoch)" : ""));
      cache_logged = true;
    }
  };
  std::unique_ptr<exec::Session> head_session;  // the frozen head, run per batch
  if (o.precomputed) {
    if (cache_tensor.empty() || !o.cache || o.augment) {
      throw Error("a precomputed feature cache needs a hybrid whose head is frozen, the cache on and no augmentation");
    }
    const Precomputed& pre = *o.precomputed;
    if (!pre.head.defined() || pre.head.size(0) != d.size()) {
      throw Error("the precomputed feature cache of '" + cache_tensor + "' does not have one row per image (" +
                  std::to_string(d.size()) + ")");
    }
    features = pre.head;
    for (const auto& name : teacher_wanted) {
      auto it = pre.teacher.find(name);
      if (it == pre.teacher.end() || it->second.size(0) != d.size()) {
        throw Error("the precomputed feature cache lacks the teacher's '" + name + "' for every image");
      }
      targets_cache[name] = it->second;
    }
    session = std::make_unique<exec::Session>(cut::tail(model, {cache_tensor}), so);
    feed = cache_tensor;
    r.used_cache = true;
  } else if (!cache_tensor.empty() && (!o.cache || o.augment)) {
    exec::SessionOptions ho;
    ho.optimize = true;
    head_session = std::make_unique<exec::Session>(cut::head(model, {cache_tensor}), ho);
    session = std::make_unique<exec::Session>(cut::tail(model, {cache_tensor}), so);
    feed = cache_tensor;
  } else if (!cache_tensor.empty()) {
    exec::SessionOptions ho;
    ho.optimize = true;
    head_cache = std::make_unique<exec::Session>(cut::head(model, {cache_tensor}), ho);
    // Data-parallel ranks cache their share of each epoch when it starts; one rank caches all now.
    if (!dist) fill_cache(at::arange(d.size(), at::kLong));
    session = std::make_unique<exec::Session>(cut::tail(model, {cache_tensor}), so);
    feed = cache_tensor;
    r.used_cache = true;
  } else {
    session = std::make_unique<exec::Session>(model, so);
  }
  std::map<std::string, at::Tensor> params;
  for (const auto& name : r.trained) params[name] = session->initializers().at(name);
  Optimizer opt(params, o.optimizer);
  if (!o.resume.empty()) {
    ir::Graph state = checkpoint_state(o.resume, ir::load(o.resume));
    opt.load_state(state.initializers);
    const auto meta = nlohmann::json::parse(state.get_metadata(kCheckpointTag).value_or("{}"));
    start_epoch = meta.value("epochs_done", 0);
    auto losses = state.initializers.find("losses");
    if (losses != state.initializers.end()) {
      const at::Tensor l = losses->second.contiguous();
      r.losses.assign(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
    }
  }

  if (dist) {
    // Every rank starts from rank 0's adapter: its weights and its BatchNorm statistics.
    std::vector<at::Tensor> replicated;
    for (const auto& name : r.trained) replicated.push_back(params.at(name));
    for (const auto& n : model.nodes) {
      if (n.op_type != "BatchNormalization" || !train_nodes.count(n.name)) continue;
      for (size_t i = 3; i < 5 && i < n.inputs.size(); ++i) {
        auto it = session->initializers().find(n.inputs[i]);
        if (it != session->initializers().end()) replicated.push_back(it->second);
      }
    }
    o.group->broadcast(replicated);
  }

  std::unique_ptr<GradientReducer> reducer;
  if (dist) {
    std::vector<at::Tensor> ps;
    for (const auto& name : r.trained) ps.push_back(params.at(name));
    reducer = std::make_unique<GradientReducer>(*o.group, ps, 3);
  }

  std::ofstream log;
  if (!o.log_jsonl.empty() && rank == 0) {
    log.open(o.log_jsonl, o.resume.empty() ? std::ios::trunc : std::ios::app);
    if (!log) throw Error(o.log_jsonl + ": cannot open for writing");
  }
  // A rank's share of an epoch: every image once, padded to a multiple of the world size.
  const int64_t share = (d.size() + world - 1) / world;
  const int64_t per_epoch = (share + o.batch - 1) / o.batch;
  const int64_t total = per_epoch * o.epochs;
  step = start_epoch * per_epoch;  // checkpoints are taken at epoch ends (any world size)
  const bool tty = ::isatty(2);
  const auto t0 = Clock::now();
  int64_t images = 0;
  for (int64_t epoch = start_epoch; epoch < o.epochs; ++epoch) {
    // Batches come from the prefetching loader, or straight from the feature cache.
    std::unique_ptr<data::Loader> loader;
    at::Tensor order;
    if (features.defined() || head_cache) {
      order = data::shard_order(data::epoch_order(d.size(), o.seed, epoch, /*shuffle=*/true), rank, world);
      if (dist) fill_cache(order);  // rows in the order of this rank's share
    } else {
      data::LoaderOptions lo;
      lo.batch = o.batch;
      lo.seed = o.seed;
      lo.epoch = epoch;
      lo.augment = o.augment;
      lo.rank = rank;
      lo.world = world;
      loader = std::make_unique<data::Loader>(d, p, lo);
    }
    double epoch_loss = 0, epoch_correct = 0;
    int64_t epoch_seen = 0;
    for (int64_t b = 0; b < per_epoch; ++b, ++step) {
      // Ops that draw random numbers in training mode (Dropout) use ATen's global generator:
      // seed it from the run's seed and the step, so a run — and a resumed run — is repeatable.
      at::manual_seed(o.seed * 7919 + static_cast<uint64_t>(step) + 1);
      if (dist) o.group->progress(step);  // named if the others wait for it
      at::Tensor idx, rows, x, y;
      if (loader) {
        data::Batch batch = loader->next().value();
        idx = batch.indices;
        x = batch.inputs;
        y = batch.labels;
        if (head_session) {
          // Out of inference mode (the tail's autograd may save it for backward).
          x = head_session->run({{input, x}}, {cache_tensor}).at(cache_tensor).clone();
        }
      } else {
        idx = order.slice(0, b * o.batch, std::min((b + 1) * o.batch, order.numel()));
        // The cache's rows: the dataset's, or (data-parallel) this epoch's share in order.
        rows = dist ? at::arange(b * o.batch, b * o.batch + idx.numel(), at::kLong) : idx;
        x = features.index_select(0, rows);
        y = d.labels.index_select(0, idx);
      }
      std::vector<std::string> wanted{logits};
      if (want_feature) wanted.insert(wanted.end(), hybrid_features.begin(), hybrid_features.end());
      exec::TensorMap out = session->run({{feed, x}}, wanted);
      at::Tensor z = out.at(logits).reshape({x.size(0), -1});
      exec::TensorMap target;
      if (!targets_cache.empty()) {
        for (const auto& [name, t] : targets_cache) target[name] = t.index_select(0, rows);
      } else if (teacher) {
        target = teach(d.images.index_select(0, idx));
      }
      at::Tensor loss = at::zeros({}, z.options());
      if (weights.count("ce") && weights.at("ce") > 0) loss = loss + ce_loss(z, y) * weights.at("ce");
      if (want_feature) {
        at::Tensor f = at::zeros({}, z.options());
        for (size_t k = 0; k < hybrid_features.size(); ++k) {
          f = f + feature_loss(out.at(hybrid_features[k]), target.at(teacher_features[k]));
        }
        loss = loss + f * (weights.at("feature") / static_cast<double>(hybrid_features.size()));
      }
      if (want_kd) {
        loss = loss + kd_loss(z, target.at(teacher_logits).reshape({x.size(0), -1}), o.temperature) * weights.at("kd");
      }
      double lv = loss.item<double>();
      double correct = z.argmax(1).eq(y).sum().item<double>();
      int64_t seen = x.size(0);
      // Data-parallel: the step's loss, hits and images go with the gradients, whose buckets are
      // all-reduced while backward runs; each gradient becomes the mean over the ranks (each is
      // its batch's mean).
      if (reducer) {
        reducer->set_extra(at::tensor({lv * static_cast<double>(seen), correct, static_cast<double>(seen)}, at::kFloat));
      }
      loss.backward();
      CommStats comm;
      if (dist) {
        reducer->finish();
        const at::Tensor tally = reducer->extra();
        seen = static_cast<int64_t>(std::llround(tally[2].item<double>()));
        lv = tally[0].item<double>() / static_cast<double>(std::max<int64_t>(seen, 1));
        correct = tally[1].item<double>();
        comm = o.group->take_stats();
        r.comm_bytes += comm.bytes;
        r.comm_seconds += comm.seconds;
      }
      const double lr = cosine_lr(o.optimizer.lr, step, total, o.warmup);
      const double grad_norm = opt.step(lr);
      if (!std::isfinite(lv)) {
        throw Error("the loss became " + std::to_string(lv) + " at step " + std::to_string(step) +
                    "; lower the learning rate (--lr) or clip gradients (--clip)");
      }
      r.losses.push_back(lv);
      images += seen;
      epoch_loss += lv * seen;
      epoch_correct += correct;
      epoch_seen += seen;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      const double ips = images / std::max(elapsed, 1e-9);
      if (log) {
        nlohmann::json line = {{"epoch", epoch + 1}, {"step", step + 1}, {"loss", lv},
                               {"accuracy", correct / static_cast<double>(seen)}, {"lr", lr}, {"grad_norm", grad_norm},
                               {"images_per_s", ips}, {"seconds", elapsed}};
        if (dist) {
          line["world"] = world;
          line["comm_bytes"] = comm.bytes;  // this rank's all-reduces this step (SyncBatchNorm's too)
          line["comm_seconds"] = comm.seconds;
        }
        log << line.dump() << "\n";
      }
      if (o.progress && rank == 0 && (tty || b + 1 == per_epoch || (b + 1) % std::max<int64_t>(per_epoch / 10, 1) == 0)) {
        const double eta = (total - step - 1) * (elapsed / std::max<int64_t>(step + 1 - start_epoch * per_epoch, 1));
        std::fprintf(stderr, "%sepoch %lld/%lld step %lld/%lld | %.0f img/s | loss %.4f | acc %.1f%% | lr %.4g | ETA %s%s",
                     tty ? "\r" : "", static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs),
                     static_cast<long long>(b + 1), static_cast<long long>(per_epoch), ips, epoch_loss / epoch_seen,
                     100 * epoch_correct / epoch_seen, lr, duration(eta).c_str(), tty ? "   " : "\n");
      }
    }
    if (o.progress && rank == 0 && tty) std::fprintf(stderr, "\n");
    if (!o.checkpoint.empty() && rank == 0) save_checkpoint(model, opt, o.checkpoint, epoch + 1, step, r.losses);
    if (o.on_epoch_end) o.on_epoch_end(epoch + 1);
  }
  if (dist) o.group->barrier();  // every rank is done before rank 0 writes its results
  for (const auto& name : r.trained) model.initializers.at(name).requires_grad_(false);
  r.steps = step;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.images_per_second = images / std::max(r.seconds, 1e-9);
  return r;
}

}  // namespace graft::train
