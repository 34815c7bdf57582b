#include "graft/train/distributed.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "graft/core/error.h"
#include "graft/data/dataset.h"
#include "graft/train/evaluate.h"

namespace graft::train {
namespace {

using Clock = std::chrono::steady_clock;

std::optional<std::string> getenv_str(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, std::optional<int> fallback, int min, const std::string& hint) {
  const auto v = getenv_str(name);
  if (!v) {
    if (fallback) return *fallback;
    throw Error(std::string(name) + " is not set" + hint);
  }
  size_t used = 0;
  long x = -1;
  try {
    x = std::stol(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v->size() || x < min || x > 1 << 20) {
    throw Error(std::string(name) + "='" + *v + "' is not a whole number >= " + std::to_string(min));
  }
  return static_cast<int>(x);
}

// A one-line description of what a c10d exception says (its first line, without the C++ frames).
std::string first_line(const std::exception& e) {
  std::string m = e.what();
  const size_t nl = m.find('\n');
  if (nl != std::string::npos) m.resize(nl);
  return m;
}

std::string list(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

// The tensors' values flattened into one buffer of `type` (what a collective sends), and back.
at::Tensor pack(const std::vector<at::Tensor>& tensors, at::ScalarType type) {
  std::vector<at::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape(-1).to(type));
  return at::cat(flat);
}
void unpack(const at::Tensor& buffer, const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(buffer.slice(0, offset, offset + n).view(t.sizes()));
    offset += n;
  }
}

// Sum over the ranks; backward sums the incoming gradients over the ranks too.
struct ReplicaSum : public torch::autograd::Function<ReplicaSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, ProcessGroup* group) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    at::Tensor y = x.detach().clone();
    group->all_reduce_sum({y});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* group = reinterpret_cast<ProcessGroup*>(ctx->saved_data["group"].toInt());
    at::Tensor g = grads.at(0).clone();
    group->all_reduce_sum({g});
    return {g, at::Tensor()};
  }
};

}  // namespace

std::optional<DistEnv> dist_env(const std::string& mode) {
  DistEnv e;
  if (mode == "slurm") {
    const std::string hint = " (--dist slurm runs under srun, which sets it)";
    e.world = env_int("SLURM_NTASKS", std::nullopt, 1, hint);
    e.rank = env_int("SLURM_PROCID", std::nullopt, 0, hint);
    e.local_rank = env_int("SLURM_LOCALID", 0, 0, hint);
    e.source = "slurm";
  } else if (mode == "env") {
    if (!getenv_str("WORLD_SIZE")) return std::nullopt;
    const std::string hint = " (torchrun sets it; by hand, give RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)";
    e.world = env_int("WORLD_SIZE", std::nullopt, 1, hint);
    if (e.world == 1) return std::nullopt;
    e.rank = env_int("RANK", std::nullopt, 0, hint);
    e.local_rank = env_int("LOCAL_RANK", 0, 0, hint);
    e.source = getenv_str("TORCHELASTIC_RUN_ID") ? "torchrun" : "env";
  } else {
    throw Error("--dist '" + mode + "': env (torchrun's variables, the default) or slurm");
  }
  if (e.world == 1) return std::nullopt;
  if (e.rank >= e.world) {
    throw Error("rank " + std::to_string(e.rank) + " is not below the world size " + std::to_string(e.world));
  }
  const std::string hint = " (the address and port of rank 0's host, the same for every rank)";
  const auto addr = getenv_str("MASTER_ADDR");
  if (!addr) throw Error("MASTER_ADDR is not set" + hint);
  e.master_addr = *addr;
  e.master_port = env_int("MASTER_PORT", std::nullopt, 1, hint);
  if (e.master_port > 65535) throw Error("MASTER_PORT=" + std::to_string(e.master_port) + " is not a port");
  e.agent_store = getenv_str("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  e.restart = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0, "");
  return e;
}

struct ProcessGroup::Impl {
  DistEnv env;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  CommStats stats;
  // A heartbeat in the store, on its own connection: after a failed collective, a rank whose
  // heartbeat stopped is named as the one that died.
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable stop_cv;
  bool stop = false;

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    stop_cv.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  }

  void start_heartbeat(const c10d::TCPStoreOptions& client_options) {
    auto conn = c10::make_intrusive<c10d::TCPStore>(env.master_addr, client_options);
    auto beat = c10::make_intrusive<c10d::PrefixStore>("graft/" + std::to_string(env.restart), conn);
    const std::string key = "alive/" + std::to_string(env.rank);
    heartbeat = std::thread([this, beat, key] {
      while (true) {
        try {
          beat->add(key, 1);
        } catch (const std::exception&) {
          return;  // the store is gone: the collectives will say so
        }
        std::unique_lock<std::mutex> lock(mutex);
        if (stop_cv.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop; })) return;
      }
    });
  }

  // Ranks whose heartbeat stopped, else those that recorded the least progress, for a message
  // after a failed collective.
  std::string behind() {
    try {
      store->setTimeout(std::chrono::milliseconds(3000));
      auto beats = [&] {
        std::vector<int64_t> v;
        for (int r = 0; r < env.world; ++r) v.push_back(store->add("alive/" + std::to_string(r), 0));
        return v;
      };
      const std::vector<int64_t> before = beats();
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      const std::vector<int64_t> after = beats();
      std::vector<int> dead;
      for (int r = 0; r < env.world; ++r) {
        if (r != env.rank && after[static_cast<size_t>(r)] == before[static_cast<size_t>(r)]) dead.push_back(r);
      }
      if (!dead.empty()) {
        return "rank" + std::string(dead.size() > 1 ? "s " : " ") + list(dead) + " stopped (no heartbeat): died";
      }
      std::vector<std::pair<int, int64_t>> steps;
      int64_t most = -1;
      for (int r = 0; r < env.world; ++r) {
        const std::string key = "step/" + std::to_string(r);
        int64_t s = -1;
        if (store->check({key})) {
          const std::vector<uint8_t> v = store->get(key);
          s = std::stoll(std::string(v.begin(), v.end()));
        }
        steps.emplace_back(r, s);
        most = std::max(most, s);
      }
      std::vector<int> late;
      for (const auto& [r, s] : steps) {
        if (s < most && r != env.rank) late.push_back(r);
      }
      if (late.empty()) return "no rank is behind in the store; a rank's process or link failed";
      return "rank" + std::string(late.size() > 1 ? "s " : " ") + list(late) + " stopped (step " +
             std::to_string(steps[static_cast<size_t>(late.front())].second) + ", others at " +
             std::to_string(most) + "): died or stalled";
    } catch (const std::exception&) {
      return env.agent_store ? "the launcher's store is gone" : "rank 0, which hosts the store, is gone";
    }
  }

  void run(const char* what, int64_t bytes, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    finish(what, bytes, launch(what, start), Clock::now());
  }

  c10::intrusive_ptr<c10d::Work> launch(const char* what,
                                        const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    try {
      return start();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  void finish(const char* what, int64_t bytes, const c10::intrusive_ptr<c10d::Work>& w, Clock::time_point t0) {
    try {
      if (!w->wait(timeout)) throw Error(std::string(what) + " did not complete");
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail(what, e);
    }
    stats.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    stats.bytes += bytes;
    stats.calls += 1;
  }

  [[noreturn]] void fail(const char* what, const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": " + what + " failed (" + first_line(e) + "): " + behind() +
                " (--dist-timeout " + std::to_string(timeout.count() / 1000) + " s)");
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env, double timeout_seconds) {
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0 && !env.agent_store;
    so.numWorkers = env.world;
    so.waitWorkers = false;  // joining is checked below, naming who is missing
    so.timeout = impl->timeout;
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": no store at " + where + " within " +
                std::to_string(static_cast<int>(timeout_seconds)) + " s (" + first_line(e) + "); " +
                (env.rank == 0 && !env.agent_store ? "is the port free?" : "is rank 0 running, and MASTER_ADDR/MASTER_PORT right?"));
  }
  // Keys of an earlier attempt (torchrun restarts the workers) are never read.
  impl->store = c10::make_intrusive<c10d::PrefixStore>("graft/" + std::to_string(env.restart), tcp);
  c10d::Store& store = *impl->store;
  store.set("joined/" + std::to_string(env.rank), std::vector<uint8_t>{1});
  store.add("joined", 1);
  const auto deadline = Clock::now() + impl->timeout;
  while (store.add("joined", 0) < env.world) {
    if (Clock::now() > deadline) {
      std::vector<int> missing;
      for (int r = 0; r < env.world; ++r) {
        if (!store.check({"joined/" + std::to_string(r)})) missing.push_back(r);
      }
      throw Error("rank" + std::string(missing.size() > 1 ? "s " : " ") + list(missing) + " did not join within " +
                  std::to_string(static_cast<int>(timeout_seconds)) + " s (world size " + std::to_string(env.world) +
                  ", store " + where + "; --dist-timeout)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    c10d::TCPStoreOptions client;
    client.port = static_cast<uint16_t>(env.master_port);
    client.isServer = false;
    client.timeout = std::min(impl->timeout, std::chrono::milliseconds(5000));  // a beat never waits long
    try {
      impl->start_heartbeat(client);
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(env.rank) + ": lost the store at " + where + " (" + first_line(e) + ")");
    }
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(impl->timeout);
  const std::string& a = env.master_addr;
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0') {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (a == "localhost" || a.rfind("127.", 0) == 0) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  try {
    impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", impl->store), env.rank, env.world, opts);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": Gloo could not connect the ranks (" + first_line(e) +
                "); on several machines set GLOO_SOCKET_IFNAME to the interface they share");
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world() const { return impl_->env.world; }
int ProcessGroup::restart() const { return impl_->env.restart; }

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return;
  std::vector<at::Tensor> buffer{pack(tensors, at::kDouble)};
  impl_->run("broadcast", buffer[0].numel() * 8, [&] { return impl_->pg->broadcast(buffer); });
  unpack(buffer[0], tensors);
}

void ProcessGroup::all_reduce_sum(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> bucket;
    int64_t bytes = 0;
    while (i < tensors.size() && (bucket.empty() || bytes + tensors[i].numel() * 4 <= bucket_bytes)) {
      bytes += tensors[i].numel() * 4;
      bucket.push_back(tensors[i++]);
    }
    std::vector<at::Tensor> buffer{pack(bucket, at::kFloat)};
    impl_->run("all-reduce", bytes, [&] { return impl_->pg->allreduce(buffer); });
    unpack(buffer[0], bucket);
  }
}

std::function<void()> ProcessGroup::start_all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  auto buffer = std::make_shared<std::vector<at::Tensor>>(std::vector<at::Tensor>{pack(tensors, at::kFloat)});
  const int64_t bytes = buffer->at(0).numel() * 4;
  c10::intrusive_ptr<c10d::Work> w = impl_->launch("all-reduce", [&] { return impl_->pg->allreduce(*buffer); });
  // The wait is what the step spends on it: the time counted from the call that waits.
  return [this, w, buffer, tensors, bytes] {
    impl_->finish("all-reduce", bytes, w, Clock::now());
    unpack(buffer->at(0), tensors);
  };
}

struct GradientReducer::Impl {
  ProcessGroup* group = nullptr;
  std::vector<at::Tensor> params;
  struct Bucket {
    std::vector<size_t> members;  // indices into params
    at::Tensor buffer;            // float: the members' gradients, then (last bucket) the extra
    std::vector<int64_t> offset;  // per member
    int64_t extra_offset = -1;
    int pending = 0;              // gradients (and the extra) still to come this step
    std::function<void()> wait;   // set once started
  };
  std::vector<Bucket> buckets;
  std::vector<std::pair<size_t, size_t>> where;  // param -> (bucket, member)
  std::vector<bool> arrived;
  std::vector<unsigned> hooks;
  int64_t extra = 0;
  at::Tensor extra_sum;
  int world = 1;

  void reset() {
    for (auto& b : buckets) {
      b.buffer.zero_();
      b.pending = static_cast<int>(b.members.size()) + (b.extra_offset >= 0 ? 1 : 0);
      b.wait = nullptr;
    }
    std::fill(arrived.begin(), arrived.end(), false);
  }
  void arrive(Bucket& b) {
    if (--b.pending == 0) b.wait = group->start_all_reduce_sum({b.buffer});
  }
  void take(size_t i, const at::Tensor& g) {
    // Autograd hands a leaf its summed gradient once per backward; a second would be lost.
    if (arrived[i]) throw Error("GradientReducer: a second gradient for one parameter in a step");
    arrived[i] = true;
    auto [bi, mi] = where[i];
    Bucket& b = buckets[bi];
    const int64_t n = params[i].numel();
    {
      at::NoGradGuard no_grad;
      b.buffer.slice(0, b.offset[mi], b.offset[mi] + n).copy_(g.detach().reshape(-1));
    }
    arrive(b);
  }
};

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<at::Tensor> params, int64_t extra,
                                 int64_t bucket_bytes)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.group = &group;
  m.world = group.world();
  m.params = std::move(params);
  m.extra = extra;
  m.where.resize(m.params.size());
  m.arrived.assign(m.params.size(), false);
  // Reverse order: backward reaches the last layers first.
  int64_t bytes = 0;
  for (size_t k = m.params.size(); k-- > 0;) {
    const int64_t n = m.params[k].numel();
    if (m.buckets.empty() || (bytes + n * 4 > bucket_bytes && !m.buckets.back().members.empty())) {
      m.buckets.emplace_back();
      bytes = 0;
    }
    Impl::Bucket& b = m.buckets.back();
    m.where[k] = {m.buckets.size() - 1, b.members.size()};
    b.offset.push_back(bytes / 4);
    b.members.push_back(k);
    bytes += n * 4;
  }
  if (m.buckets.empty()) m.buckets.emplace_back();
  for (auto& b : m.buckets) {
    int64_t n = 0;
    for (size_t k : b.members) n += m.params[k].numel();
    if (&b == &m.buckets.back()) {
      b.extra_offset = n;
      n += extra;
    }
    b.buffer = at::zeros({n}, at::kFloat);
  }
  m.reset();
  for (size_t k = 0; k < m.params.size(); ++k) {
    Impl* self = impl_.get();
    m.hooks.push_back(m.params[k].register_hook([self, k](const at::Tensor& g) { self->take(k, g); }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < impl_->hooks.size(); ++k) impl_->params[k].remove_hook(impl_->hooks[k]);
}

void GradientReducer::set_extra(const at::Tensor& values) {
  Impl::Bucket& b = impl_->buckets.back();
  if (values.numel() != impl_->extra) throw Error("GradientReducer: extra values of the wrong size");
  b.buffer.slice(0, b.extra_offset, b.extra_offset + impl_->extra).copy_(values.reshape(-1));
  impl_->arrive(b);
}

void GradientReducer::finish() {
  Impl& m = *impl_;
  for (auto& b : m.buckets) {
    if (!b.wait) b.wait = m.group->start_all_reduce_sum({b.buffer});  // zeros for what never came
  }
  for (auto& b : m.buckets) b.wait();
  at::NoGradGuard no_grad;
  for (auto& b : m.buckets) {
    for (size_t mi = 0; mi < b.members.size(); ++mi) {
      at::Tensor& p = m.params[b.members[mi]];
      p.mutable_grad() = b.buffer.slice(0, b.offset[mi], b.offset[mi] + p.numel()).view(p.sizes()) / m.world;
    }
  }
  const Impl::Bucket& last = m.buckets.back();
  m.extra_sum = last.buffer.slice(0, last.extra_offset, last.extra_offset + m.extra).clone();
  m.reset();  // ready for the next step
}

at::Tensor GradientReducer::extra() const { return impl_->extra_sum; }

int GradientReducer::buckets() const { return static_cast<int>(impl_->buckets.size()); }

void ProcessGroup::wait_for_ranks() {
  c10d::Store& store = *impl_->store;
  const int world = impl_->env.world, rank = impl_->env.rank;
  std::vector<int64_t> beats(static_cast<size_t>(world), -1);
  std::vector<Clock::time_point> changed(static_cast<size_t>(world), Clock::now());
  try {
    const int64_t mine = store.add("at/" + std::to_string(rank), 1);
    for (int r = 0; r < world; ++r) {
      const size_t i = static_cast<size_t>(r);
      while (store.add("at/" + std::to_string(r), 0) < mine) {
        const int64_t b = store.add("alive/" + std::to_string(r), 0);
        if (b != beats[i]) {
          beats[i] = b;
          changed[i] = Clock::now();
        } else if (Clock::now() - changed[i] > impl_->timeout) {
          throw Error("rank " + std::to_string(rank) + ": rank " + std::to_string(r) + " stopped (no heartbeat for " +
                      std::to_string(impl_->timeout.count() / 1000) + " s): died or stalled (--dist-timeout)");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank) + ": the store stopped answering (" + first_line(e) + "): " +
                (impl_->env.agent_store ? "the launcher is gone" : "rank 0, which hosts it, is gone"));
  }
}

std::vector<std::string> ProcessGroup::all_gather(const std::string& mine) {
  const int world = impl_->env.world, rank = impl_->env.rank;
  std::vector<at::Tensor> lengths{at::zeros({world}, at::kLong)};
  lengths[0][rank] = static_cast<int64_t>(mine.size());
  impl_->run("all-reduce", 8 * world, [&] { return impl_->pg->allreduce(lengths); });
  std::vector<std::string> out(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    const int64_t n = lengths[0][r].item<int64_t>();
    if (n == 0) continue;
    std::vector<at::Tensor> buffer{at::empty({n}, at::kByte)};
    if (r == rank) std::memcpy(buffer[0].data_ptr(), mine.data(), static_cast<size_t>(n));
    c10d::BroadcastOptions bo;
    bo.rootRank = r;
    impl_->run("broadcast", n, [&] { return impl_->pg->broadcast(buffer, bo); });
    out[static_cast<size_t>(r)].assign(static_cast<const char*>(buffer[0].data_ptr()), static_cast<size_t>(n));
  }
  return out;
}

std::function<at::Tensor(const at::Tensor&)> ProcessGroup::replica_sum() {
  return [this](const at::Tensor& x) { return ReplicaSum::apply(x, this); };
}

void ProcessGroup::barrier() {
  impl_->run("barrier", 0, [&] { return impl_->pg->barrier(); });
}

void ProcessGroup::progress(int64_t step) {
  const std::string v = std::to_string(step);
  try {
    impl_->store->set("step/" + std::to_string(impl_->env.rank), std::vector<uint8_t>(v.begin(), v.end()));
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(impl_->env.rank) + ": the store stopped answering (" + first_line(e) +
                "): " + (impl_->env.agent_store ? "the launcher is gone" : "rank 0, which hosts it, is gone"));
  }
}

data::Dataset eval_shard(const data::Dataset& d, int rank, int world) {
  if (world <= 1) return d;
  data::Dataset out = d;
  const at::Tensor idx = at::arange(rank, d.size(), world, at::kLong);
  out.images = d.images.index_select(0, idx);
  out.labels = d.labels.index_select(0, idx);
  return out;
}

Evaluation all_reduce(const Evaluation& e, ProcessGroup& group) {
  Evaluation out = e;
  const double n = static_cast<double>(e.count);
  at::Tensor tally = at::tensor({e.top1 * n, e.top5 * n, n}, at::kDouble);
  const at::Tensor confusion = e.confusion.defined() ? e.confusion.to(at::kDouble) : at::Tensor();
  // Float buffers: exact for counts below 2^24.
  group.all_reduce_sum(confusion.defined() ? std::vector<at::Tensor>{tally, confusion}
                                           : std::vector<at::Tensor>{tally});
  out.count = static_cast<int64_t>(std::llround(tally[2].item<double>()));
  out.top1 = std::llround(tally[0].item<double>()) / static_cast<double>(std::max<int64_t>(out.count, 1));
  out.top5 = std::llround(tally[1].item<double>()) / static_cast<double>(std::max<int64_t>(out.count, 1));
  if (confusion.defined()) {
    out.confusion = confusion.round().to(at::kLong);
    out.per_class.clear();
    for (int64_t c = 0; c < out.confusion.size(0); ++c) {
      const double total = out.confusion[c].sum().item<double>();
      out.per_class.push_back(total > 0 ? out.confusion[c][c].item<double>() / total : 0.0);
    }
  }
  return out;
}

CommStats ProcessGroup::take_stats() {
  CommStats s = impl_->stats;
  impl_->stats = {};
  return s;
}

}  // namespace graft::train
