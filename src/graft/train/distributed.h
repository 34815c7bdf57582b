// Data-parallel training across processes on torch.distributed's c10d, as PyTorch jobs run it:
// the workers find each other through a TCPStore (rank 0's, or the launcher's) and reduce
// gradients with ProcessGroupGloo. The launcher sets the environment: torchrun (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_*), Slurm (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID; MASTER_ADDR and MASTER_PORT from the job script), or the user by hand.
//
// No collective waits forever: every one, and the rendezvous, gives up after the timeout with an
// Error naming the rank that did not take part (each rank records its progress in the store).
// The c10d headers stay in distributed.cc.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace graft::data {
struct Dataset;
}

namespace graft::train {

struct Evaluation;

struct DistEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // torchrun's static rendezvous: its agent hosts the store
  int restart = 0;           // torchrun's restart count: keys of earlier attempts are not read
  std::string source;        // "torchrun", "slurm" or "env", for messages
};

// The job's ranks from the environment: `mode` "env" (RANK/WORLD_SIZE…, torchrun's variables) or
// "slurm" (SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID). nullopt when the world has one rank (no
// WORLD_SIZE, or 1). Error naming the variable when one is missing or malformed.
std::optional<DistEnv> dist_env(const std::string& mode = "env");

// Bytes sent and time spent in collectives since the last take_stats().
struct CommStats {
  int64_t bytes = 0;
  double seconds = 0;
  int64_t calls = 0;
};

class ProcessGroup {
 public:
  // Rendezvous: rank 0 (or torchrun's agent) hosts the store at master_addr:master_port; every
  // rank joins within `timeout_seconds`, else Error naming the ranks missing.
  static std::shared_ptr<ProcessGroup> connect(const DistEnv& env, double timeout_seconds);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world() const;
  int restart() const;  // torchrun's restart count (TORCHELASTIC_RESTART_COUNT)
  // Every rank's tensors take rank 0's values (in place; float or double, contiguous or not).
  void broadcast(const std::vector<at::Tensor>& tensors);
  // Sums the tensors over the ranks, in place: packed into one float buffer per bucket of at most
  // `bucket_bytes`, one all-reduce each.
  void all_reduce_sum(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = int64_t{25} << 20);
  // A sum over the ranks that autograd differentiates (backward sums the gradients over the
  // ranks): what SyncBatchNorm's statistics take (exec::SessionOptions::replica_sum). The group
  // must outlive it.
  std::function<at::Tensor(const at::Tensor&)> replica_sum();
  // Waits until every rank has called this as often as this rank has, for as long as they keep
  // beating: ranks busy for long (a search's candidates) are not a timeout; a rank whose heartbeat
  // stopped for the timeout is named.
  void wait_for_ranks();
  // Every rank's bytes on every rank, in rank order (the lengths may differ; empty is sent free).
  std::vector<std::string> all_gather(const std::string& mine);
  // Starts summing `tensors` over the ranks (one float buffer) and returns at once; the returned
  // call waits for the sums and writes them back (what overlaps a backward pass).
  std::function<void()> start_all_reduce_sum(const std::vector<at::Tensor>& tensors);
  // Every rank has reached this point (what rank 0 waits for before its last writes are final).
  void barrier();
  // Records that this rank reached `step` (the store keeps it: on a timeout the ranks behind are
  // named).
  void progress(int64_t step);
  CommStats take_stats();

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Gradients summed over the ranks while backward runs, as DistributedDataParallel does: a hook on
// each parameter takes its gradient as autograd computes it, into buckets of at most
// `bucket_bytes` (the parameters in reverse order, the order backward reaches them); a bucket's
// all-reduce starts as soon as its last gradient is in, while backward goes on. `extra` floats
// (a step's loss and counts, set before backward) travel in the last bucket. finish(), after
// backward, starts what is left (a parameter that got no gradient counts as zeros), waits, and
// leaves every parameter's .grad the mean over the ranks and extra() the sum.
class GradientReducer {
 public:
  GradientReducer(ProcessGroup& group, std::vector<at::Tensor> params, int64_t extra,
                  int64_t bucket_bytes = int64_t{4} << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  void set_extra(const at::Tensor& values);  // before backward
  void finish();
  at::Tensor extra() const;  // after finish(): the ranks' extra values summed
  int buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Data-parallel evaluation: a rank's share of a dataset (every world-th example from its rank;
// no padding, so every example counts once), and the ranks' evaluations summed into the whole
// dataset's (counts, top-1/top-5 hits, confusion matrix, per-class accuracy), on every rank.
data::Dataset eval_shard(const data::Dataset& d, int rank, int world);
Evaluation all_reduce(const Evaluation& e, ProcessGroup& group);

}  // namespace graft::train
