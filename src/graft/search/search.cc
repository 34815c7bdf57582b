#include "graft/search/search.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include <unistd.h>

#include "graft/adapt/adapter.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/core/sha256.h"
#include "graft/cut/cut.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/ir/summary.h"
#include "graft/stitch/stitch.h"
#include "graft/train/distributed.h"
#include "graft/train/evaluate.h"
#include "graft/train/trainer.h"

namespace graft::search {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kStateVersion = 2;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Cut points of `g` (weights not needed) whose tensor is 4-D, one per group of consecutive cut
// points with the same device MACs and bytes (a convolution, its BatchNorm, its activation: the
// last is kept, the activated tensor a next layer would read).
// With `only`, the cut points named there instead (Error naming one that is not a 4-D cut point).
std::vector<cut::CutPoint> distinct_points(const ir::Graph& g, const std::string& path,
                                           const std::vector<std::string>& only) {
  ir::Graph shapes = g;
  ir::fix_batch(shapes, 1);
  ir::infer_shapes(shapes);
  std::vector<cut::CutPoint> four_d, out;
  for (const auto& p : cut::cut_points(shapes)) {
    const std::optional<ir::Shape>& s = shapes.value(p.tensor).shape;
    if (s && s->size() == 4 && p.bytes > 0) four_d.push_back(p);
  }
  if (!only.empty()) {
    for (const auto& name : only) {
      auto it = std::find_if(four_d.begin(), four_d.end(), [&](const cut::CutPoint& p) {
        return p.tensor == name || shapes.nodes[static_cast<size_t>(p.node)].name == name;
      });
      if (it == four_d.end()) {
        throw Error(path + ": '" + name + "' is not a cut point with a 4-D output (see graft cuts " + path + ")");
      }
      if (std::none_of(out.begin(), out.end(), [&](const cut::CutPoint& p) { return p.tensor == it->tensor; })) {
        out.push_back(*it);
      }
    }
    std::sort(out.begin(), out.end(), [](const cut::CutPoint& a, const cut::CutPoint& b) { return a.node < b.node; });
    return out;
  }
  for (size_t i = 0; i < four_d.size(); ++i) {
    const cut::CutPoint& p = four_d[i];
    if (i + 1 < four_d.size() && four_d[i + 1].macs_before == p.macs_before && four_d[i + 1].bytes == p.bytes) continue;
    out.push_back(p);
  }
  return out;
}

// a dominates b: no worse on every objective and better on one (accuracy up, costs down).
bool dominates(double acc_a, int64_t dev_a, int64_t bytes_a, double acc_b, int64_t dev_b, int64_t bytes_b) {
  const bool no_worse = acc_a >= acc_b && dev_a <= dev_b && bytes_a <= bytes_b;
  return no_worse && (acc_a > acc_b || dev_a < dev_b || bytes_a < bytes_b);
}

// Pareto ranks (0 = non-dominated) of items given as (accuracy, device MACs, bytes).
std::vector<int> pareto_ranks(const std::vector<std::tuple<double, int64_t, int64_t>>& items) {
  std::vector<int> rank(items.size(), -1);
  size_t assigned = 0;
  for (int r = 0; assigned < items.size(); ++r) {
    std::vector<size_t> layer;
    for (size_t i = 0; i < items.size(); ++i) {
      if (rank[i] >= 0) continue;
      bool dominated = false;
      for (size_t j = 0; j < items.size() && !dominated; ++j) {
        if (j == i || (rank[j] >= 0 && rank[j] < r)) continue;
        const auto& [aj, dj, bj] = items[j];
        const auto& [ai, di, bi] = items[i];
        dominated = dominates(aj, dj, bj, ai, di, bi);
      }
      if (!dominated) layer.push_back(i);
    }
    for (size_t i : layer) rank[i] = r;
    assigned += layer.size();
  }
  return rank;
}

data::Dataset take(const data::Dataset& d, const std::vector<int64_t>& idx) {
  data::Dataset out = d;
  const at::Tensor i = at::tensor(idx, at::kLong);
  out.images = d.images.index_select(0, i).contiguous();
  out.labels = d.labels.index_select(0, i).contiguous();
  return out;
}

// The held-out images and the training pool: a seeded shuffle of the training split, its first
// `holdout` images held out and the rest in shuffled order (so every prefix is a random subset).
std::pair<data::Dataset, data::Dataset> split_holdout(const data::Dataset& train, int64_t holdout, uint64_t seed) {
  const int64_t n = train.size();
  if (holdout < 1 || holdout >= n) {
    throw Error(train.origin + ": --holdout " + std::to_string(holdout) + " must leave images on both sides of " +
                std::to_string(n));
  }
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 17);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  const std::vector<int64_t> h(idx.begin(), idx.begin() + holdout), p(idx.begin() + holdout, idx.end());
  return {take(train, h), take(train, p)};
}

double accuracy(ir::Graph g, const std::string& origin, const data::Dataset& d) {
  const data::Preprocess p = data::Preprocess::from_metadata(g, origin);
  exec::SessionOptions so;
  so.optimize = true;
  exec::Session s(std::move(g), so, origin);
  return train::evaluate(s, d, p).top1;
}

// Cache passes run whole chunks of this many images from the start of the pool, so an image's
// cached values never depend on how many images a pass covers.
constexpr int64_t kPassChunk = 256;

// Rows a cache of the first `rows` images of `d` holds: whole chunks.
int64_t cache_rows(const data::Dataset& d, int64_t rows) {
  return std::min(d.size(), (rows + kPassChunk - 1) / kPassChunk * kPassChunk);
}

// The outputs `wanted` of `model` for the first `rows` images of `d` (whole chunks: cache_rows),
// each written into one preallocated tensor.
std::map<std::string, at::Tensor> pass(const Model& model, const data::Dataset& d, int64_t rows,
                                       const std::set<std::string>& wanted) {
  std::map<std::string, at::Tensor> out;
  if (wanted.empty()) return out;
  const data::Preprocess p = data::Preprocess::from_metadata(*model.graph, model.path);
  exec::SessionOptions so;
  so.optimize = true;
  so.keep = wanted;
  exec::Session s(*model.graph, so, model.path);
  const std::string& input = s.graph().inputs.at(0);
  const std::vector<std::string> names(wanted.begin(), wanted.end());
  const int64_t total = cache_rows(d, rows);
  for (int64_t i = 0; i < total; i += kPassChunk) {
    const int64_t end = std::min(i + kPassChunk, total);
    const at::Tensor raw = d.images.slice(0, i, end);
    for (auto& [name, t] : s.run({{input, data::preprocess_batch(raw, p)}}, names)) {
      at::Tensor& dst = out[name];
      if (!dst.defined()) {
        std::vector<int64_t> sizes = t.sizes().vec();
        sizes[0] = total;
        dst = at::empty(sizes, t.options());
      }
      dst.slice(0, i, end).copy_(t);
    }
  }
  return out;
}

// Per-image bytes of a tensor whose shape (batch 1) is inferred in `shapes`.
int64_t bytes_per_image(const ir::Graph& shapes, const std::string& tensor) {
  const auto sizes = ir::known_sizes(shapes.value(tensor).shape);
  if (!sizes || sizes->empty()) throw Error("'" + tensor + "': shape unknown, cannot size its feature cache");
  int64_t n = 4;
  for (size_t i = 1; i < sizes->size(); ++i) n *= (*sizes)[i];
  return n;
}

// Physical memory, bytes (0 if unknown).
int64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

// The schedule: images seen in rung k, and the last rung.
int64_t rung_images(const Options& o, int64_t max_images, int k) {
  const double v = static_cast<double>(o.min_images) * std::pow(o.eta, k);
  return std::min<int64_t>(max_images, static_cast<int64_t>(std::llround(v)));
}

struct Trained {
  ir::Graph hybrid;
  int64_t seen = 0;  // images seen in training, earlier rungs included when continuing
};

// An adapter's tensors (trained weights and BatchNorm statistics) after one rung.
struct Weights {
  int rung = -1;
  std::map<std::string, at::Tensor> tensors;
};

// Results shared between ranks: a double as its bytes; an evaluation with an adapter's tensors as
// a JSON header line and then the tensors' bytes.
std::string encode_double(double v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); }
double decode_double(const std::string& b) {
  double v = 0;
  if (b.size() != sizeof v) throw Error("search: a rank sent a malformed score");
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

std::string encode(const Evaluation& e, const Weights& w) {
  nlohmann::json tensors = nlohmann::json::array();
  std::string data;
  for (const auto& [name, t] : w.tensors) {
    const at::Tensor c = t.contiguous();
    tensors.push_back({{"name", name}, {"type", static_cast<int>(c.scalar_type())}, {"sizes", c.sizes().vec()}});
    data.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.nbytes()));
  }
  const nlohmann::json head = {{"rung", e.rung},       {"images", e.images}, {"accuracy", e.accuracy},
                               {"seconds", e.seconds}, {"weights_rung", w.rung}, {"tensors", tensors}};
  return head.dump() + "\n" + data;
}

void decode(const std::string& bytes, Evaluation& e, Weights& w) {
  const size_t nl = bytes.find('\n');
  const nlohmann::json head =
      nl == std::string::npos ? nlohmann::json() : nlohmann::json::parse(bytes.substr(0, nl), nullptr, false);
  if (!head.is_object()) throw Error("search: a rank sent a malformed evaluation");
  e.rung = head.at("rung");
  e.images = head.at("images");
  e.accuracy = head.at("accuracy");
  e.seconds = head.at("seconds");
  w.rung = head.at("weights_rung");
  size_t offset = nl + 1;
  for (const auto& jt : head.at("tensors")) {
    at::Tensor t = at::empty(jt.at("sizes").get<std::vector<int64_t>>(),
                             at::TensorOptions().dtype(static_cast<at::ScalarType>(jt.at("type").get<int>())));
    const size_t n = static_cast<size_t>(t.nbytes());
    if (offset + n > bytes.size()) throw Error("search: a rank sent a truncated evaluation");
    std::memcpy(t.data_ptr(), bytes.data() + offset, n);
    offset += n;
    w.tensors[jt.at("name").get<std::string>()] = t;
  }
}

std::string json_settings_mismatch(const nlohmann::json& a, const nlohmann::json& b) {
  for (const auto& [k, v] : a.items()) {
    if (!b.contains(k) || b[k] != v) return k;
  }
  for (const auto& [k, v] : b.items()) {
    if (!a.contains(k)) return k;
  }
  return "";
}

class Search {
 public:
  Search(const Model& mobile, const Model& server, const data::Dataset& train, const Options& o)
      : mobile_(mobile), server_(server), o_(o), started_(Clock::now()) {
    if (o.group != nullptr) {
      group_ = o.group;
      rank_ = o.group->rank();
      world_ = o.group->world();
      r_.ranks = world_;
    }
    if (o.min_images < 1) throw Error("--min-images must be positive");
    if (!(o.eta > 1)) throw Error("--eta must be greater than 1");
    if (o.batch < 1) throw Error("--batch must be positive");
    if (!(o.clip >= 0)) throw Error("--clip must be 0 (off) or positive");
    std::tie(holdout_, pool_) = split_holdout(train, o.holdout, o.seed);
    max_images_ = o.max_images > 0 ? o.max_images : 2 * pool_.size();
    if (max_images_ < o.min_images) {
      throw Error("--max-images " + std::to_string(max_images_) + " is below --min-images " +
                  std::to_string(o.min_images));
    }
    teacher_logits_ = train::logits_of(*server.graph);
    if (o.cache_memory < 0) throw Error("--cache-memory must be positive");
    r_.cache_bound = o.cache_memory > 0 ? o.cache_memory : physical_memory() / 3;
    if (r_.cache_bound <= 0) r_.cache_bound = int64_t{4} << 30;
    settings_ = settings_json(mobile, server, train, o);
    enumerate();
  }

  Result& result() { return r_; }

  void run(const data::Dataset* test) {
    // The clock starts with the search (enumeration and the held-out split included).
    const auto t0 = started_;
    double before = 0;
    if (o_.resume) before = load_state();
    say(std::to_string(r_.candidates.size()) + " candidates (" + std::to_string(r_.pairs_kept) + " of " +
        std::to_string(r_.pairs_joinable) + " joinable cut pairs) in " + fixed(since(started_), 1) + " s" +
        (world_ > 1 ? " on " + std::to_string(world_) + " ranks" : ""));
    auto elapsed = [&] { return before + since(t0); };
    auto over_budget = [&] { return o_.budget_seconds > 0 && elapsed() >= o_.budget_seconds; };
    r_.train_images = pool_.size();
    r_.holdout_images = holdout_.size();
    if (!o_.resume || r_.mobile_holdout == 0) {
      const std::vector<std::string> scores = *spread(2, [&](size_t j) {
        const Model& m = j == 0 ? mobile_ : server_;
        return encode_double(accuracy(*m.graph, m.path, holdout_));
      });
      r_.mobile_holdout = decode_double(scores[0]);
      r_.server_holdout = decode_double(scores[1]);
    }
    say("held-out images: " + std::to_string(holdout_.size()) + "; mobile " + pct(r_.mobile_holdout) + ", server " +
        pct(r_.server_holdout) + "; training pool " + std::to_string(pool_.size()) + " images");
    std::vector<int> in_rung;
    for (const auto& c : r_.candidates) in_rung.push_back(c.id);
    bool stopped = false;
    for (int k = 0; !in_rung.empty() && !stopped; ++k) {
      const int64_t images = rung_images(o_, max_images_, k);
      const Step st = step(r_.candidates[static_cast<size_t>(in_rung.front())], k);
      say("rung " + std::to_string(k) + ": " + std::to_string(in_rung.size()) + " candidates x " +
          std::to_string(images) + " images (" + (continuing(k) ? "continuing: " : "") + std::to_string(st.rows) +
          " x " + std::to_string(st.epochs) + ")");
      const std::vector<Group> groups = group(in_rung, st.rows);
      if (groups.size() > 1) {
        say("  caches over " + fixed(r_.cache_bound / 1048576.0, 0) + " MiB: " + std::to_string(groups.size()) +
            " groups of candidates");
      }
      int done = 0;
      for (const Group& g : groups) {
        std::vector<int> todo;
        for (int id : g.ids) {
          if (static_cast<int>(r_.candidates[static_cast<size_t>(id)].evaluations.size()) <= k) todo.push_back(id);
        }
        done += static_cast<int>(g.ids.size() - todo.size());  // resumed
        if (todo.empty()) continue;
        if (agree(over_budget())) {
          stopped = true;
          break;
        }
        std::vector<int> mine;  // this rank's share of the group
        for (size_t j = static_cast<size_t>(rank_); j < todo.size(); j += static_cast<size_t>(world_)) {
          mine.push_back(todo[j]);
        }
        if (!g.cached) {
          caches_.clear();
          say("  " + r_.candidates[static_cast<size_t>(g.ids.front())].mobile_cut + " -> " +
              r_.candidates[static_cast<size_t>(g.ids.front())].server_cut +
              ": its caches exceed the bound; trains without (both models run on every batch)");
        } else if (!mine.empty()) {
          prepare_caches(mine, st.rows, /*drop_others=*/true);
        }
        const bool finished = spread(
            todo.size(),
            [&](size_t j) {
              const Candidate& c = r_.candidates[static_cast<size_t>(todo[j])];
              const auto t1 = Clock::now();
              Trained t = advance(c, k, g.cached, /*drop=*/false);
              Evaluation e;
              e.rung = k;
              e.images = t.seen;
              e.accuracy = accuracy(t.hybrid, "candidate " + std::to_string(c.id), holdout_);
              e.seconds = since(t1);
              return encode(e, weights_.at(c.id));
            },
            [&](size_t j, const std::string& result) {
              Candidate& c = r_.candidates[static_cast<size_t>(todo[j])];
              Evaluation e;
              Weights w;
              decode(result, e, w);
              c.evaluations.push_back(e);
              weights_[c.id] = std::move(w);
              ++done;
              r_.seconds = elapsed();
              save_state(false);
              say("  [" + std::to_string(done) + "/" + std::to_string(in_rung.size()) + "] " + c.mobile_cut +
                  " -> " + c.server_cut + " " + c.family + ": " + pct(e.accuracy) + " held-out (" +
                  fixed(e.seconds, 1) + " s" + (world_ > 1 ? ", rank " + std::to_string(j % world_) : "") + ")");
            },
            over_budget)
                                  .has_value();
        if (!finished) {
          stopped = true;
          break;
        }
      }
      if (stopped) break;
      r_.rungs_done = k + 1;
      if (images >= max_images_) break;
      in_rung = promote(in_rung, k);
    }
    caches_.clear();
    r_.complete = !stopped;
    r_.front = front();
    if (stopped) say("stopped by the budget after " + fixed(elapsed(), 0) + " s; --resume continues");
    if (test != nullptr) {
      // The two models, then the front's points, round-robin over the ranks.
      const std::vector<std::string> scores = *spread(2 + r_.front.size(), [&](size_t j) {
        if (j < 2) {
          const Model& m = j == 0 ? mobile_ : server_;
          return encode_double(accuracy(*m.graph, m.path, *test));
        }
        const Candidate& c = r_.candidates[static_cast<size_t>(r_.front[j - 2])];
        return encode_double(accuracy(materialize(c), "candidate " + std::to_string(c.id), *test));
      });
      r_.mobile_test = decode_double(scores[0]);
      r_.server_test = decode_double(scores[1]);
      for (size_t i = 0; i < r_.front.size(); ++i) {
        r_.candidates[static_cast<size_t>(r_.front[i])].test_accuracy = decode_double(scores[2 + i]);
      }
    }
    if (group_ != nullptr) {
      // Each rank's peak: the most any one held.
      for (const std::string& peak : share(encode_double(static_cast<double>(r_.cache_peak)))) {
        r_.cache_peak = std::max(r_.cache_peak, static_cast<int64_t>(decode_double(peak)));
      }
    }
    if (!o_.write_best.empty()) {
      const Candidate* b = best(r_, o_.best_max_split_bytes, o_.best_max_device_macs);
      if (b == nullptr) throw Error("no front point within the limits to write to " + o_.write_best);
      if (rank_ == 0) ir::save(materialize(*b), o_.write_best);
      r_.best_written = b->id;
      say("wrote " + o_.write_best + ": candidate " + std::to_string(b->id) + " (" + b->mobile_cut + " -> " +
          b->server_cut + ", " + b->adapter + "), " + pct(b->last()->accuracy) + " held-out");
    }
    r_.seconds = elapsed();
    save_state(r_.complete);
    share("");  // the ranks end together, after rank 0's writes
  }

  // Jobs 0..n-1 round-robin over the ranks, `world` at a time (job j on rank j % world); after
  // each round every rank hands the round's results, in order, to `take`. Returns every result on
  // every rank, or nullopt when `stop`, asked before each round (rank 0's answer holds for all),
  // ended it early. One rank: the jobs in order.
  std::optional<std::vector<std::string>> spread(size_t n, const std::function<std::string(size_t)>& job,
                                                 const std::function<void(size_t, const std::string&)>& take = nullptr,
                                                 const std::function<bool()>& stop = nullptr) {
    std::vector<std::string> out;
    const size_t world = static_cast<size_t>(world_), rank = static_cast<size_t>(rank_);
    for (size_t round = 0; round < n; round += world) {
      if (stop && agree(stop())) return std::nullopt;
      const size_t j = round + rank;
      const std::string mine = j < n ? job(j) : std::string();
      const std::vector<std::string> got = share(mine);
      for (size_t r = 0; r < got.size() && round + r < n; ++r) {
        if (take) take(round + r, got[r]);
        out.push_back(got[r]);
      }
    }
    return out;
  }

  // Rank 0's `mine` on every rank (decisions that must not differ between ranks).
  bool agree(bool mine) { return share(mine ? "1" : "0").at(0) == "1"; }

  // Every rank's bytes on every rank, in rank order, once all have come (a rank may train for
  // long before it does: only a rank whose heartbeat stops is a timeout).
  std::vector<std::string> share(const std::string& mine) {
    if (group_ == nullptr) return {mine};
    group_->wait_for_ranks();
    return group_->all_gather(mine);
  }

  // The hybrid of candidate `c` with the adapter of its last evaluation: kept from the search, or
  // trained again the same way (a resumed search keeps only the evaluations' scores).
  ir::Graph materialize(const Candidate& c) {
    if (c.last() == nullptr) throw Error("candidate " + std::to_string(c.id) + " was never trained");
    const int last = c.last()->rung;
    auto it = weights_.find(c.id);
    if (it == weights_.end() || it->second.rung != last) {
      Trained t = advance(c, last, /*cached=*/fits_alone(c, step(c, last).rows), /*drop=*/true);
      return std::move(t.hybrid);
    }
    ir::Graph h = stitch_candidate(c);
    for (const auto& [name, t] : it->second.tensors) h.initializers.at(name) = t;
    return h;
  }

  std::string pct(double f) const { return fixed(100 * f, 2) + "%"; }
  static std::string fixed(double v, int digits) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
  }

 private:
  void say(const std::string& line) const {
    if (o_.progress && rank_ == 0) o_.progress(line);
  }

  void enumerate() {
    const std::vector<cut::CutPoint> mp = distinct_points(*mobile_.graph, mobile_.path, o_.mobile_cuts),
                                      sp = distinct_points(*server_.graph, server_.path, o_.server_cuts);
    ir::Graph ms = *mobile_.graph, ss = *server_.graph;
    ir::fix_batch(ms, 1);
    ir::infer_shapes(ms);
    ir::fix_batch(ss, 1);
    ir::infer_shapes(ss);
    r_.mobile_macs = ir::summarize(ms).macs;
    r_.server_macs = ir::summarize(ss).macs;
    for (const auto& p : mp) mobile_bytes_[p.tensor] = bytes_per_image(ms, p.tensor);
    for (const auto& p : sp) {
      server_bytes_[p.tensor] = bytes_per_image(ss, p.tensor);
      server_order_.emplace(p.tensor, static_cast<int>(server_order_.size()));
    }
    server_bytes_[teacher_logits_] = bytes_per_image(ss, teacher_logits_);
    // The mobile cut points not dominated on (device MACs, bytes): the server's cut does not
    // change either, so a pair is dominated exactly when its mobile cut is.
    std::vector<const cut::CutPoint*> kept;
    for (const auto& p : mp) {
      bool dominated = false;
      for (const auto& q : mp) dominated = dominated || dominates(0, q.macs_before, q.bytes, 0, p.macs_before, p.bytes);
      if (!dominated) kept.push_back(&p);
    }
    std::set<std::string> joinable_pairs;
    for (const auto& m : mp) {
      const adapt::Shape3 from = adapt::shape_of(ms, m.tensor);
      const bool on_front = std::find(kept.begin(), kept.end(), &m) != kept.end();
      for (const auto& s : sp) {
        const adapt::Target to = adapt::target_of(ss, s.tensor);
        bool any = false;
        for (const auto& family : o_.adapters) {
          std::vector<adapt::Adapter> designs = adapt::design(from, to, family);
          if (designs.empty()) continue;
          any = true;
          if (!on_front) continue;
          const adapt::Adapter& a = designs.front();
          Candidate c;
          c.id = static_cast<int>(r_.candidates.size());
          c.mobile_cut = m.tensor;
          c.server_cut = s.tensor;
          c.family = a.family;
          c.adapter = a.spec();
          c.adapter_params = a.params;
          c.device_macs = m.macs_before;
          c.server_macs = s.macs_after + a.macs;
          adapt::Shape3 at_split = from;
          if (a.split_after >= 0) {
            adapt::Adapter encoder = a;
            encoder.layers.resize(static_cast<size_t>(a.split_after) + 1);
            adapt::evaluate(encoder, from);
            c.device_macs += encoder.macs;
            c.server_macs -= encoder.macs;
            at_split = a.split_shape;
          }
          c.split_bytes = 4 * at_split.c * at_split.h * at_split.w;
          c.split_shape = at_split.str();
          if (o_.max_split_bytes > 0 && c.split_bytes > o_.max_split_bytes) continue;
          r_.candidates.push_back(std::move(c));
        }
        if (any) joinable_pairs.insert(m.tensor + "|" + s.tensor);
      }
    }
    r_.pairs_joinable = static_cast<int>(joinable_pairs.size());
    std::set<std::string> kept_pairs;
    for (const auto& c : r_.candidates) kept_pairs.insert(c.mobile_cut + "|" + c.server_cut);
    r_.pairs_kept = static_cast<int>(kept_pairs.size());
    if (r_.candidates.empty()) {
      throw Error("no cut pair of " + mobile_.path + " and " + server_.path + " can be joined by the adapter families " +
                  nlohmann::json(o_.adapters).dump() + " (see graft design)");
    }
  }

  // The next rung's candidates: the best 1/eta of this rung's by Pareto rank, then accuracy.
  std::vector<int> promote(const std::vector<int>& ids, int k) const {
    std::vector<std::tuple<double, int64_t, int64_t>> items;
    for (int id : ids) {
      const Candidate& c = r_.candidates[static_cast<size_t>(id)];
      items.emplace_back(c.evaluations.at(static_cast<size_t>(k)).accuracy, c.device_macs, c.split_bytes);
    }
    const std::vector<int> rank = pareto_ranks(items);
    std::vector<size_t> order(ids.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (rank[a] != rank[b]) return rank[a] < rank[b];
      return std::get<0>(items[a]) > std::get<0>(items[b]);
    });
    const size_t keep = static_cast<size_t>(std::ceil(static_cast<double>(ids.size()) / o_.eta));
    std::vector<int> out;
    for (size_t i = 0; i < keep && i < order.size(); ++i) out.push_back(ids[order[i]]);
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<int> front() const {
    std::vector<int> ids;
    std::vector<std::tuple<double, int64_t, int64_t>> items;
    for (const auto& c : r_.candidates) {
      if (c.last() == nullptr) continue;
      ids.push_back(c.id);
      items.emplace_back(c.last()->accuracy, c.device_macs, c.split_bytes);
    }
    const std::vector<int> rank = pareto_ranks(items);
    std::vector<int> out;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (rank[i] == 0) out.push_back(ids[i]);
    }
    return out;
  }

  // A rung's training of one candidate: the first `rows` pool images, `epochs` times.
  struct Step {
    int64_t rows = 0, epochs = 0;
  };
  bool continuing(int k) const { return k > 0 && !o_.restart; }

  // Rung k of candidate c (which has its evaluations of the rungs before k): all of the rung's
  // images from scratch, or when continuing the images the rung adds to what c has seen. Whole
  // epochs over a prefix of the pool, as near the count as whole epochs allow.
  Step step(const Candidate& c, int k) const {
    const int64_t total = rung_images(o_, max_images_, k);
    int64_t fresh = total;
    if (continuing(k)) fresh = total - c.evaluations.at(static_cast<size_t>(k - 1)).images;
    fresh = std::max<int64_t>(fresh, 1);
    Step st;
    st.epochs = (fresh + pool_.size() - 1) / pool_.size();
    st.rows = (fresh + st.epochs - 1) / st.epochs;
    return st;
  }

  // Trains candidate c for rung k, from the adapter of rung k - 1 when continuing (kept, or
  // trained again rung by rung when the search was resumed), and keeps the result's weights.
  // `cached`: read the feature caches (computed here for c if missing; `drop` frees the others).
  Trained advance(const Candidate& c, int k, bool cached, bool drop) {
    const Step st = step(c, k);
    std::map<std::string, at::Tensor> init;
    int64_t before = 0;
    if (continuing(k)) {
      auto it = weights_.find(c.id);
      if (it == weights_.end() || it->second.rung != k - 1) {
        advance(c, k - 1, cached && fits_alone(c, step(c, k - 1).rows), drop);
        it = weights_.find(c.id);
      }
      init = it->second.tensors;
      before = c.evaluations.at(static_cast<size_t>(k - 1)).images;
    }
    if (cached) prepare_caches({c.id}, st.rows, drop);
    Trained t = train_candidate(c, k, st, init.empty() ? nullptr : &init, cached);
    t.seen = before + st.rows * st.epochs;
    return t;
  }

  // Bytes the caches of `mobile` and `server` tensors take for the first `rows` pool images.
  int64_t cache_bytes(const std::set<std::string>& mobile, const std::set<std::string>& server, int64_t rows) const {
    int64_t per_image = 0;
    for (const auto& t : mobile) per_image += mobile_bytes_.at(t);
    for (const auto& t : server) per_image += server_bytes_.at(t);
    return per_image * cache_rows(pool_, rows);
  }
  bool fits_alone(const Candidate& c, int64_t rows) const {
    return cache_bytes({c.mobile_cut}, {c.server_cut, teacher_logits_}, rows) <= r_.cache_bound;
  }

  // A rung's candidates in groups whose caches fit the bound together, in order of server cut
  // (its tensors are the large ones, shared by every mobile cut); a candidate whose caches alone
  // exceed the bound is a group of its own that trains without caches.
  struct Group {
    std::vector<int> ids;
    bool cached = true;
  };
  std::vector<Group> group(std::vector<int> ids, int64_t rows) const {
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) {
      return server_order_.at(r_.candidates[static_cast<size_t>(a)].server_cut) <
             server_order_.at(r_.candidates[static_cast<size_t>(b)].server_cut);
    });
    std::vector<Group> out;
    std::set<std::string> m, s;
    for (int id : ids) {
      const Candidate& c = r_.candidates[static_cast<size_t>(id)];
      if (!fits_alone(c, rows)) {
        out.push_back({{id}, false});
        continue;
      }
      std::set<std::string> m2 = m, s2 = s;
      m2.insert(c.mobile_cut);
      s2.insert(c.server_cut);
      s2.insert(teacher_logits_);
      if (out.empty() || !out.back().cached || cache_bytes(m2, s2, rows) > r_.cache_bound) {
        out.push_back({{}, true});
        m = {c.mobile_cut};
        s = {c.server_cut, teacher_logits_};
      } else {
        m = std::move(m2);
        s = std::move(s2);
      }
      out.back().ids.push_back(id);
    }
    return out;
  }

  // The head outputs and teacher outputs the candidates `ids` read, for the first `rows` pool
  // images: one pass of each model computes every tensor still missing. `drop_others` frees the
  // tensors these candidates do not read first.
  void prepare_caches(const std::vector<int>& ids, int64_t rows, bool drop_others) {
    std::set<std::string> mobile_wanted, server_wanted{teacher_logits_};
    for (int id : ids) {
      mobile_wanted.insert(r_.candidates[static_cast<size_t>(id)].mobile_cut);
      server_wanted.insert(r_.candidates[static_cast<size_t>(id)].server_cut);
    }
    auto held = [&] {
      int64_t bytes = 0;
      for (const auto* cache : {&caches_.mobile, &caches_.server}) {
        for (const auto& [name, t] : *cache) bytes += t.numel() * static_cast<int64_t>(t.element_size());
      }
      return bytes;
    };
    auto refresh = [&](std::map<std::string, at::Tensor>& cache, const Model& model,
                       const std::set<std::string>& wanted) {
      std::set<std::string> missing;
      for (auto it = cache.begin(); it != cache.end();) {
        it = drop_others && !wanted.count(it->first) ? cache.erase(it) : std::next(it);
      }
      for (const auto& w : wanted) {
        auto it = cache.find(w);
        if (it == cache.end() || it->second.size(0) < rows) {
          missing.insert(w);
          if (it != cache.end()) cache.erase(it);  // recomputed over more images
        }
      }
      if (missing.empty()) return;
      const auto t0 = Clock::now();
      for (auto& [name, t] : pass(model, pool_, rows, missing)) cache[name] = std::move(t);
      const int64_t bytes = held();
      r_.cache_peak = std::max(r_.cache_peak, bytes);
      say("  cache: " + std::to_string(missing.size()) + " tensors of " +
          std::filesystem::path(model.path).filename().string() + " for " + std::to_string(cache_rows(pool_, rows)) +
          " images in " + fixed(since(t0), 1) + " s (" + fixed(bytes / 1048576.0, 0) + " MiB held)");
    };
    refresh(caches_.mobile, mobile_, mobile_wanted);
    refresh(caches_.server, server_, server_wanted);
  }

  ir::Graph stitch_candidate(const Candidate& c) const {
    stitch::Options so(c.adapter);
    so.seed = o_.seed + static_cast<uint64_t>(c.id);
    so.head_path = mobile_.path;
    so.tail_path = server_.path;
    return stitch::stitch(*mobile_.graph, c.mobile_cut, *server_.graph, c.server_cut, so);
  }

  // Trains c's adapter for rung k (from `init` when given, else from its initialisation) and
  // keeps its tensors in weights_ for the rung after.
  Trained train_candidate(const Candidate& c, int k, const Step& st,
                          const std::map<std::string, at::Tensor>* init, bool cached) {
    Trained t;
    t.hybrid = stitch_candidate(c);
    if (init != nullptr) {
      for (const auto& [name, tensor] : *init) t.hybrid.initializers.at(name) = tensor.clone();
    }
    train::TrainOptions to;
    if (cached) {
      auto pre = std::make_shared<train::Precomputed>();
      pre->head = caches_.mobile.at(c.mobile_cut).slice(0, 0, st.rows);
      pre->teacher_logits = teacher_logits_;
      pre->teacher[teacher_logits_] = caches_.server.at(teacher_logits_).slice(0, 0, st.rows);
      pre->teacher[c.server_cut] = caches_.server.at(c.server_cut).slice(0, 0, st.rows);
      to.precomputed = pre;
    } else {
      to.cache = false;  // the trainer's own cache would hold what the bound refused
    }
    to.loss = o_.loss;
    to.epochs = st.epochs;
    to.batch = o_.batch;
    to.seed = o_.seed;
    to.optimizer.lr = o_.lr;
    to.optimizer.clip_norm = o_.clip;
    to.optimizer.nesterov = true;
    const int64_t steps = st.epochs * ((st.rows + o_.batch - 1) / o_.batch);
    to.warmup = std::min<int64_t>(100, steps / 10);
    to.progress = false;
    const data::Dataset d = data::head(pool_, st.rows);
    const data::Preprocess p = data::Preprocess::from_metadata(t.hybrid, "candidate");
    train::fit(t.hybrid, d, p, to);
    // Everything the adapter holds: its trained weights and its BatchNorm statistics (updated by
    // training, never by gradients); the head's ("a/") and tail's ("b/") are frozen.
    Weights w;
    w.rung = k;
    for (const auto& [name, tensor] : t.hybrid.initializers) {
      if (name.rfind("a/", 0) != 0 && name.rfind("b/", 0) != 0) w.tensors[name] = tensor.detach().clone();
    }
    weights_[c.id] = std::move(w);
    return t;
  }

  double load_state() {
    const std::string& path = o_.state;
    if (path.empty()) throw Error("--resume needs the result file of the interrupted search (-o)");
    // Rank 0 reads the file (the others may be on machines without it) and every rank gets its
    // text, or the error.
    std::string text;
    if (rank_ == 0) {
      try {
        if (!std::filesystem::exists(path)) throw Error(path + ": no search to resume (the file does not exist)");
        text = "+" + read_file(path);
      } catch (const Error& e) {
        text = std::string("-") + e.what();
      }
    }
    text = share(text).at(0);
    if (text.empty() || text[0] != '+') throw Error(text.empty() ? path + ": unreadable" : text.substr(1));
    const nlohmann::json j = nlohmann::json::parse(text.substr(1), nullptr, false);
    if (!j.is_object() || j.value("version", 0) != kStateVersion || !j.contains("settings") ||
        !j.contains("candidates")) {
      throw Error(path + ": not a graft search result (version " + std::to_string(kStateVersion) + ")");
    }
    const std::string diff = json_settings_mismatch(j["settings"], settings_);
    if (!diff.empty()) {
      throw Error(path + ": was searched with other settings ('" + diff + "' differs); resume with the same models, "
                  "data and options, or start anew without --resume");
    }
    if (j["candidates"].size() != r_.candidates.size()) throw Error(path + ": its candidates differ from this search's");
    for (const auto& jc : j["candidates"]) {
      const int id = jc.value("id", -1);
      if (id < 0 || id >= static_cast<int>(r_.candidates.size())) throw Error(path + ": candidate id out of range");
      Candidate& c = r_.candidates[static_cast<size_t>(id)];
      if (jc.value("mobile_cut", "") != c.mobile_cut || jc.value("server_cut", "") != c.server_cut ||
          jc.value("adapter", "") != c.adapter) {
        throw Error(path + ": candidate " + std::to_string(id) + " differs from this search's");
      }
      for (const auto& je : jc.value("evaluations", nlohmann::json::array())) {
        Evaluation e;
        e.rung = je.at("rung");
        e.images = je.at("images");
        e.accuracy = je.at("holdout_top1");
        e.seconds = je.at("seconds");
        c.evaluations.push_back(e);
      }
    }
    r_.mobile_holdout = j["baselines"]["mobile"].value("holdout_top1", 0.0);
    r_.server_holdout = j["baselines"]["server"].value("holdout_top1", 0.0);
    say(path + ": resuming after " + fixed(j.value("seconds", 0.0), 0) + " s");
    return j.value("seconds", 0.0);
  }

  void save_state(bool complete) {
    if (o_.state.empty() || rank_ != 0) return;
    r_.complete = complete;
    write_file_atomic(o_.state, r_.to_json(settings_).dump(1) + "\n");
  }

  const Model& mobile_;
  const Model& server_;
  const Options& o_;
  train::ProcessGroup* group_ = nullptr;
  int rank_ = 0, world_ = 1;
  Clock::time_point started_;
  nlohmann::json settings_;
  data::Dataset holdout_, pool_;
  int64_t max_images_ = 0;
  std::string teacher_logits_;
  Result r_;
  struct {
    std::map<std::string, at::Tensor> mobile, server;
    void clear() {
      mobile.clear();
      server.clear();
    }
  } caches_;
  std::map<int, Weights> weights_;                             // per candidate, its latest rung
  std::map<std::string, int64_t> mobile_bytes_, server_bytes_;  // per image, of cacheable tensors
  std::map<std::string, int> server_order_;                     // server cut -> its position
};

}  // namespace

nlohmann::json Result::to_json(const nlohmann::json& settings) const {
  nlohmann::json cs = nlohmann::json::array();
  for (const auto& c : candidates) {
    nlohmann::json evals = nlohmann::json::array();
    for (const auto& e : c.evaluations) {
      evals.push_back({{"rung", e.rung}, {"images", e.images}, {"holdout_top1", e.accuracy}, {"seconds", e.seconds}});
    }
    nlohmann::json jc = {{"id", c.id},
                         {"mobile_cut", c.mobile_cut},
                         {"server_cut", c.server_cut},
                         {"family", c.family},
                         {"adapter", c.adapter},
                         {"adapter_params", c.adapter_params},
                         {"device_macs", c.device_macs},
                         {"server_macs", c.server_macs},
                         {"split_bytes", c.split_bytes},
                         {"split_shape", c.split_shape},
                         {"evaluations", evals}};
    if (c.last() != nullptr) {
      jc["holdout_top1"] = c.last()->accuracy;
      double seconds = 0;
      for (const auto& e : c.evaluations) seconds += e.seconds;
      jc["train_seconds"] = seconds;
    }
    if (c.test_accuracy) jc["test_top1"] = *c.test_accuracy;
    cs.push_back(jc);
  }
  nlohmann::json mobile = {{"macs", mobile_macs}, {"holdout_top1", mobile_holdout}};
  nlohmann::json server = {{"macs", server_macs}, {"holdout_top1", server_holdout}};
  if (mobile_test) mobile["test_top1"] = *mobile_test;
  if (server_test) server["test_top1"] = *server_test;
  return {{"version", kStateVersion},
          {"kind", "graft.search"},
          {"settings", settings},
          {"complete", complete},
          {"seconds", seconds},
          {"rungs_done", rungs_done},
          {"ranks", ranks},
          {"cache_bytes_bound", cache_bound},
          {"cache_bytes_peak", cache_peak},
          {"best_written", best_written},
          {"pairs_joinable", pairs_joinable},
          {"pairs_kept", pairs_kept},
          {"train_images", train_images},
          {"holdout_images", holdout_images},
          {"baselines", {{"mobile", mobile}, {"server", server}}},
          {"front", front},
          {"candidates", cs}};
}

nlohmann::json settings_json(const Model& mobile, const Model& server, const data::Dataset& train,
                             const Options& o) {
  auto model = [](const Model& m) {
    return nlohmann::json{{"path", m.path},
                          {"sha256", std::filesystem::exists(m.path) ? sha256_file(m.path) : std::string()}};
  };
  return {{"mobile", model(mobile)},
          {"server", model(server)},
          {"data", train.origin},
          {"data_images", train.size()},
          {"adapters", o.adapters},
          {"loss", o.loss},
          {"holdout", o.holdout},
          {"min_images", o.min_images},
          {"max_images", o.max_images},
          {"eta", o.eta},
          {"continue", !o.restart},
          {"batch", o.batch},
          {"lr", o.lr},
          {"clip", o.clip},
          {"seed", o.seed},
          {"mobile_cuts", o.mobile_cuts},
          {"server_cuts", o.server_cuts},
          {"max_split_bytes", o.max_split_bytes},
          {"threads", at::get_num_threads()}};
}

Result run(const Model& mobile, const Model& server, const data::Dataset& train, const data::Dataset* test,
           const Options& options) {
  Search s(mobile, server, train, options);
  s.run(test);
  return s.result();
}

ir::Graph build(const Model& mobile, const Model& server, const data::Dataset& train, const Candidate& c,
                const Options& options) {
  Options o = options;
  o.resume = false;
  o.state.clear();
  o.group = nullptr;
  Search s(mobile, server, train, o);
  const auto& cs = s.result().candidates;
  auto it = std::find_if(cs.begin(), cs.end(), [&](const Candidate& x) {
    return x.mobile_cut == c.mobile_cut && x.server_cut == c.server_cut && x.adapter == c.adapter;
  });
  if (it == cs.end()) throw Error("candidate " + c.mobile_cut + " -> " + c.server_cut + " is not one of this search's");
  Candidate copy = *it;
  copy.evaluations = c.evaluations;
  return s.materialize(copy);
}

const Candidate* best(const Result& r, int64_t max_split_bytes, int64_t max_device_macs) {
  const Candidate* out = nullptr;
  for (int id : r.front) {
    const Candidate& c = r.candidates[static_cast<size_t>(id)];
    if (max_split_bytes > 0 && c.split_bytes > max_split_bytes) continue;
    if (max_device_macs > 0 && c.device_macs > max_device_macs) continue;
    if (out == nullptr || c.last()->accuracy > out->last()->accuracy) out = &c;
  }
  return out;
}

}  // namespace graft::search
