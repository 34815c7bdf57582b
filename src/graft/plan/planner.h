// graft::plan planner — where to split a model between a device and a server (`graft plan`),
// from a profile of each (profile.h) and a network link, in the manner of Neurosurgeon: for
// every way to run the model, the end-to-end latency of one batch is
//
//   split at a cut point:  device prefix + encode + transfer + rtt + decode + server suffix
//   all on the device:     device total
//   all on the server:     encode the input (or PNG: nothing to encode; the server decodes and
//                          preprocesses it) + transfer + rtt + decode + server total
//   transfer = (bytes sent + bytes of the answer) / bandwidth
//
// with every term measured by the profiles: prefix and suffix times, the wire bytes of the cut
// tensor under the chosen codec, the time to encode it on the device and decode it on the
// server, and the model's outputs as float32 (the answer: 4 KB for 1,000 class scores, 3.2 ms
// at 10 Mbit/s). The rtt is the link's, for one request and its answer. No overlap between
// requests is assumed: this is the latency of one batch on an idle link, not the throughput of
// a pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graft/plan/profile.h"

namespace graft::plan {

// "10Mbit/s", "1.5Gbit/s", "800kbit/s", "56kbps", "100Mbps", "12.5MB/s" (bytes), "1e6bit/s" ->
// bits per second. Error naming the text otherwise.
double parse_bandwidth(const std::string& text);
// "30ms", "0.2ms", "1s", "500us" -> milliseconds. Error naming the text otherwise.
double parse_duration_ms(const std::string& text);
// 1e7 -> "10 Mbit/s".
std::string bandwidth_str(double bits_per_s);

struct Link {
  double bits_per_s = 0;
  double rtt_ms = 0;
};

struct PlanOptions {
  std::string codec = "fp32";  // fp32 | fp16 | int8
  bool zstd = false;
};

struct Row {
  enum class Kind { kDevice, kServer, kSplit } kind = Kind::kSplit;
  std::string tensor, layer;  // split rows; the input for kServer
  int64_t row = -1;           // summary row of the layer (split rows)
  bool hybrid_split = false;  // the hybrid's recorded split point
  std::string wire;           // the wire key used ("int8+zstd", "png", …); "" all on the device
  int64_t bytes = 0;          // sent, per batch
  int64_t answer_bytes = 0;   // the answer (the outputs as float32), per batch
  int64_t device_macs = 0, server_macs = 0;  // per image
  double device_ms = 0, encode_ms = 0, transfer_ms = 0, rtt_ms = 0, decode_ms = 0, server_ms = 0;
  double total_ms = 0;
  std::string describe() const;  // "split at T (row R)", "all on the device", …
};

struct Plan {
  Link link;
  PlanOptions options;
  int64_t batch = 1;
  std::vector<Row> rows;  // all on the device, all on the server (raw, then PNG), then every cut point
  size_t best = 0;        // index of the fastest row (the first of equals)
};

// Error (naming both files) when the profiles are of different models or batches, or when a
// cut point of one is missing from the other.
Plan make_plan(const Profile& device, const Profile& server, const Link& link, const PlanOptions& options);

// Every row's arithmetic, for --json.
nlohmann::json to_json(const Plan& plan);

}  // namespace graft::plan
