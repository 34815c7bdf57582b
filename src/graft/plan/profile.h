// graft::plan profiles — what one model costs, node by node and cut point by cut point, on the
// machine that measured it (`graft profile`). A device and a server each profile the same model;
// the planner (planner.h) combines the two with a network to choose where to split.
//
// Times come from the oneDNN path's step profile (exec::RunOptions::profile), averaged over
// timed runs, and are attributed to the model's original nodes: a step of a node the graph
// passes kept counts for that node; a step of a node a pass created counts for the original
// node that produced its output; a fused node's time is inside the step of the node it was
// fused into; a layout reorder counts for the node that produced the reordered value. The
// per-node times are then scaled so that they add up to the whole model's median latency
// measured without per-step timing (the scale is recorded), so prefix + suffix = the model.
//
// For each single-tensor cut point the profile records its prefix (everything needed to compute
// the cut tensor: what the device runs) and suffix (the rest: what the server runs) times and
// MACs, and, for every codec (fp32, fp16, int8, each with and without zstd), the bytes the cut
// tensor takes on the wire and the time to encode and to decode it on this machine — measured
// on the cut tensor's actual values for the profile's input (zstd ratios depend on the data:
// profile with a real image, --image, for figures that mean something). The graph input is
// measured the same way (the all-on-server case), and, with an image, as a PNG file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graft/ir/graph.h"

namespace at {
class Tensor;
}

namespace graft::plan {

inline constexpr int kProfileFormat = 1;

struct Machine {
  std::string host, cpu;
  int cores = 0;    // logical CPUs online
  int threads = 0;  // intra-op threads the profile ran with
  std::string graft;
};

// One way of sending a tensor: bytes on the wire per batch and the time to encode (sender) and
// decode (receiver) it, in ms per batch.
struct Wire {
  int64_t bytes = 0;
  double encode_ms = 0, decode_ms = 0;
};

// Keys of the wire map: "fp32", "fp16", "int8", "fp32+zstd", "fp16+zstd", "int8+zstd", and for
// the graph input with an image also "png" (encode_ms 0: the device has the file; decode_ms:
// decoding and preprocessing it).
std::string wire_key(const std::string& codec, bool zstd);

struct NodeTime {
  std::string name, op;
  int64_t row = 0;
  double ms = 0;  // attributed step time, before scaling
};

struct CutTime {
  std::string tensor;
  std::string layer;  // the node producing it
  int64_t row = 0;    // its summary row (graft summary, --at)
  std::vector<int64_t> shape;  // at the profile's batch
  int64_t macs_before = 0, macs_after = 0;  // per image
  double prefix_ms = 0, suffix_ms = 0;      // per batch, scaled
  std::map<std::string, Wire> wire;
};

struct Profile {
  std::string model, sha256;
  std::string created;  // UTC, ISO 8601
  Machine machine;
  int64_t batch = 1, runs = 0;
  std::string input_name, input_source;  // input_source: "random", "image FILE", "npy FILE"
  std::vector<int64_t> input_shape;
  double total_ms = 0, p90_ms = 0;  // whole model, per batch, without per-step timing
  double step_sum_ms = 0;           // the profiled runs' steps, summed (before scaling)
  double scale = 1;                 // total_ms / step_sum_ms
  double unattributed_ms = 0;       // steps no original node could be found for (before scaling)
  int64_t macs = 0;                 // per image
  int64_t output_bytes = 0;         // the graph outputs as float32, per batch: what a server answers
  std::vector<NodeTime> nodes;      // in graph order
  std::vector<CutTime> cuts;        // in topological order
  std::map<std::string, Wire> input_wire;
  std::optional<std::string> split_point;  // a hybrid's recorded split tensor (graft.cut)

  const CutTime* find_cut(const std::string& tensor) const;
};

struct ProfileOptions {
  std::string model_path;  // recorded, and hashed
  int64_t runs = 30, warmup = 5;
  std::string input_source = "random";  // recorded: where `input` came from
  // The input image's (H, W, C) uint8 pixels, for the input's "png" wire; null: none.
  const at::Tensor* image = nullptr;
  // Repetitions of each encode and decode (the fastest counts).
  int codec_repeats = 3;
};

// The model's one input (a profile feeds one tensor); Error naming `path` otherwise.
const std::string& single_input(const ir::Graph& graph, const std::string& path);

// Profiles `graph` (shapes inferred at the batch of `input`) on `input`, one batch for the
// graph's single input. `per_image` is the same model with shapes at batch 1 (MACs and cut
// points are per image). Error for a model with several inputs, or one graft cannot run.
Profile measure(const ir::Graph& graph, const ir::Graph& per_image, const at::Tensor& input,
                const ProfileOptions& options);

nlohmann::json to_json(const Profile& profile);
// Error naming `origin` for a file that is not a graft profile or is malformed.
Profile from_json(const nlohmann::json& j, const std::string& origin);
Profile read_profile(const std::string& path);

// This machine: host name, CPU model, logical CPUs.
Machine this_machine(int threads);

}  // namespace graft::plan
