// graft plan MODEL --device D.json --server S.json --bandwidth 10Mbit/s --rtt 30ms — where to split
// MODEL between a device and a server (graft/plan/planner.h), from the two machines' profiles.
#include <cctype>
#include <cstdio>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/sha256.h"
#include "graft/plan/planner.h"

namespace graft::cli {
namespace {

struct PlanArgs {
  std::string model, device, server, bandwidth, rtt = "0ms", codec = "fp32", sweep;
  bool zstd = false, json = false;
};

// "1,10,100Mbit/s": a number without a unit takes the unit of the next item that has one.
std::vector<double> parse_sweep(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    items.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::vector<double> out(items.size());
  std::string unit;
  for (size_t i = items.size(); i-- > 0;) {
    std::string item = items[i];
    size_t u = 0;
    while (u < item.size() && (std::isdigit(static_cast<unsigned char>(item[u])) || item[u] == '.' || item[u] == 'e'))
      ++u;
    if (u < item.size()) {
      unit = item.substr(u);
    } else if (unit.empty()) {
      throw Error("--sweep '" + text + "': '" + item + "' has no unit (example: 1,10,100Mbit/s)");
    } else {
      item += unit;
    }
    out[i] = plan::parse_bandwidth(item);
  }
  return out;
}

void print_row(const plan::Row& r, bool best) {
  const std::string where = r.kind == plan::Row::Kind::kSplit ? r.tensor + (r.hybrid_split ? " *" : "")
                            : r.kind == plan::Row::Kind::kDevice ? "(all on the device)"
                                                                 : "(all on the server, " + r.wire + ")";
  const std::string row = r.kind == plan::Row::Kind::kSplit ? std::to_string(r.row) : "-";
  std::printf("%s %5s %12s %9.3f %8.3f %9.3f %7.2f %8.3f %9.3f %9.3f  %s\n", best ? ">" : " ", row.c_str(),
              thousands(r.bytes).c_str(), r.device_ms, r.encode_ms, r.transfer_ms, r.rtt_ms, r.decode_ms, r.server_ms,
              r.total_ms, where.c_str());
}

std::string breakdown(const plan::Row& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%.3f ms = device %.3f + encode %.3f + transfer %.3f + rtt %.2f + decode %.3f + server %.3f",
                r.total_ms, r.device_ms, r.encode_ms, r.transfer_ms, r.rtt_ms, r.decode_ms, r.server_ms);
  return buf;
}

void run(const PlanArgs& a) {
  if (a.bandwidth.empty() && a.sweep.empty()) throw Error("give --bandwidth (e.g. 10Mbit/s) or --sweep (e.g. 1,10,100Mbit/s)");
  const plan::Profile device = plan::read_profile(a.device);
  const plan::Profile server = plan::read_profile(a.server);
  const std::string sha = sha256_file(a.model);
  for (const auto* p : {&device, &server}) {
    if (p->sha256 != sha) {
      throw Error((p == &device ? a.device : a.server) + " is a profile of another file than " + a.model + " (" +
                  p->model + ", sha256 " + p->sha256.substr(0, 12) + "…); profile " + a.model + " with graft profile");
    }
  }
  plan::PlanOptions options;
  options.codec = a.codec;
  options.zstd = a.zstd;
  const double rtt = plan::parse_duration_ms(a.rtt);
  std::vector<plan::Plan> plans;
  if (!a.bandwidth.empty()) plans.push_back(plan::make_plan(device, server, {plan::parse_bandwidth(a.bandwidth), rtt}, options));
  std::vector<plan::Plan> sweep;
  if (!a.sweep.empty()) {
    for (double b : parse_sweep(a.sweep)) sweep.push_back(plan::make_plan(device, server, {b, rtt}, options));
  }
  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"device", a.device}, {"server", a.server}};
    if (!plans.empty()) j["plan"] = to_json(plans[0]);
    if (!sweep.empty()) {
      j["sweep"] = nlohmann::json::array();
      for (const auto& p : sweep) j["sweep"].push_back(to_json(p));
    }
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s, batch %lld; codec %s%s\n", a.model.c_str(), static_cast<long long>(device.batch), a.codec.c_str(),
              a.zstd ? "+zstd" : "");
  std::printf("device: %s (%s, %d thread(s)): the whole model %.3f ms\n", device.machine.host.c_str(),
              device.machine.cpu.c_str(), device.machine.threads, device.total_ms);
  std::printf("server: %s (%s, %d thread(s)): the whole model %.3f ms\n", server.machine.host.c_str(),
              server.machine.cpu.c_str(), server.machine.threads, server.total_ms);
  if (!plans.empty()) {
    const plan::Plan& p = plans[0];
    std::printf("link: %s, rtt %.2f ms\nbest: %s: %s\n\n", plan::bandwidth_str(p.link.bits_per_s).c_str(), rtt,
                p.rows[p.best].describe().c_str(), breakdown(p.rows[p.best]).c_str());
    std::printf("  %5s %12s %9s %8s %9s %7s %8s %9s %9s  %s\n", "row", "bytes", "device", "encode", "transfer", "rtt",
                "decode", "server", "total ms", "split at");
    for (size_t i = 0; i < p.rows.size(); ++i) print_row(p.rows[i], i == p.best);
    if (device.split_point) std::printf("(* the hybrid's split point)\n");
  }
  if (!sweep.empty()) {
    std::printf("%sbest per bandwidth (rtt %.2f ms):\n", plans.empty() ? "" : "\n", rtt);
    for (const auto& p : sweep) {
      const plan::Row& r = p.rows[p.best];
      std::printf("  %-12s %s: %s (%s bytes)\n", plan::bandwidth_str(p.link.bits_per_s).c_str(), r.describe().c_str(),
                  breakdown(r).c_str(), thousands(r.bytes).c_str());
    }
  }
}

}  // namespace

Command add_plan_command(CLI::App& root) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* app = root.add_subcommand(
      "plan", "Where to split a model between a device and a server, from both machines' profiles and the network");
  app->add_option("model", args->model, "The model both profiles were made of")->required();
  app->add_option("--device", args->device, "The device's profile (graft profile -o)")->required();
  app->add_option("--server", args->server, "The server's profile (graft profile -o)")->required();
  app->add_option("--bandwidth", args->bandwidth, "Device-to-server bandwidth: 10Mbit/s, 1Gbit/s, 12.5MB/s, …");
  app->add_option("--rtt", args->rtt, "Round-trip time of one request: 30ms, 0.2ms, … (default 0ms)");
  app->add_option("--codec", args->codec, "How the split tensor travels: fp32 (default), fp16 or int8")
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}));
  app->add_flag("--zstd", args->zstd, "zstd on top of the codec");
  app->add_option("--sweep", args->sweep, "Bandwidths to find the best split for: 1,10,100Mbit/s");
  app->add_flag("--json", args->json, "One JSON object: every row's arithmetic and the best");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
