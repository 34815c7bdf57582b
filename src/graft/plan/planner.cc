#include "graft/plan/planner.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "graft/core/error.h"

namespace graft::plan {
namespace {

// Splits "12.5Mbit/s" into 12.5 and "Mbit/s"; false if no number leads.
bool number_and_unit(const std::string& text, double* value, std::string* unit) {
  const char* begin = text.c_str();
  char* end = nullptr;
  *value = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(*value)) return false;
  std::string u(end);
  u.erase(0, u.find_first_not_of(' '));
  *unit = u;
  return true;
}


}  // namespace

double parse_bandwidth(const std::string& text) {
  double v = 0;
  std::string unit;
  const std::string fix = " (examples: 10Mbit/s, 1Gbit/s, 800kbit/s, 12.5MB/s)";
  if (!number_and_unit(text, &v, &unit) || v <= 0) {
    throw Error("bandwidth '" + text + "' is not a positive number with a unit" + fix);
  }
  struct Unit {
    const char* name;
    double bits;
  };
  static const Unit units[] = {
      {"bit/s", 1},   {"bps", 1},      {"kbit/s", 1e3}, {"kbps", 1e3},   {"Kbit/s", 1e3}, {"Mbit/s", 1e6},
      {"Mbps", 1e6},  {"Gbit/s", 1e9}, {"Gbps", 1e9},   {"B/s", 8},      {"kB/s", 8e3},   {"KB/s", 8e3},
      {"MB/s", 8e6},  {"GB/s", 8e9},
  };
  for (const auto& u : units) {
    if (unit == u.name) return v * u.bits;
  }
  throw Error("bandwidth '" + text + "': unknown unit '" + unit + "'" + fix);
}

double parse_duration_ms(const std::string& text) {
  double v = 0;
  std::string unit;
  if (!number_and_unit(text, &v, &unit) || v < 0) {
    throw Error("duration '" + text + "' is not a non-negative number with a unit (examples: 30ms, 0.2ms, 1s)");
  }
  if (unit == "ms") return v;
  if (unit == "s") return v * 1e3;
  if (unit == "us") return v * 1e-3;
  throw Error("duration '" + text + "': unknown unit '" + unit + "' (use ms, s or us)");
}

std::string bandwidth_str(double bits) {
  char buf[48];
  if (bits >= 1e9) {
    std::snprintf(buf, sizeof buf, "%g Gbit/s", bits / 1e9);
  } else if (bits >= 1e6) {
    std::snprintf(buf, sizeof buf, "%g Mbit/s", bits / 1e6);
  } else if (bits >= 1e3) {
    std::snprintf(buf, sizeof buf, "%g kbit/s", bits / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%g bit/s", bits);
  }
  return buf;
}

std::string Row::describe() const {
  switch (kind) {
    case Kind::kDevice:
      return "all on the device";
    case Kind::kServer:
      return "all on the server (input as " + wire + ")";
    case Kind::kSplit:
      break;
  }
  return "split at " + tensor + " (row " + std::to_string(row) + (hybrid_split ? ", the hybrid's split point" : "") + ")";
}

Plan make_plan(const Profile& device, const Profile& server, const Link& link, const PlanOptions& options) {
  const std::string both = "the device profile of " + device.model + " and the server profile of " + server.model;
  if (device.sha256 != server.sha256) {
    throw Error(both + " are of different model files (sha256 " + device.sha256.substr(0, 12) + "… vs " +
                server.sha256.substr(0, 12) + "…); profile the same file on both machines");
  }
  if (device.batch != server.batch) {
    throw Error(both + " ran batch " + std::to_string(device.batch) + " and " + std::to_string(server.batch) +
                "; profile both with the same --batch");
  }
  if (!(link.bits_per_s > 0) || !(link.rtt_ms >= 0)) throw Error("the link needs a positive bandwidth and a non-negative rtt");
  if (options.codec != "fp32" && options.codec != "fp16" && options.codec != "int8") {
    throw Error("codec '" + options.codec + "' is not fp32, fp16 or int8");
  }
  const std::string key = wire_key(options.codec, options.zstd);
  auto transfer_ms = [&](int64_t bytes) { return static_cast<double>(bytes) * 8.0 / link.bits_per_s * 1e3; };
  Plan plan;
  plan.link = link;
  plan.options = options;
  plan.batch = device.batch;

  Row local;
  local.kind = Row::Kind::kDevice;
  local.device_ms = device.total_ms;
  local.device_macs = device.macs;
  local.total_ms = device.total_ms;
  plan.rows.push_back(local);

  auto remote = [&](const std::string& wire_name) {
    const auto d = device.input_wire.find(wire_name);
    const auto s = server.input_wire.find(wire_name);
    if (d == device.input_wire.end() || s == server.input_wire.end()) return;
    Row r;
    r.kind = Row::Kind::kServer;
    r.tensor = device.input_name;
    r.wire = wire_name;
    r.bytes = d->second.bytes;
    r.answer_bytes = server.output_bytes;
    r.encode_ms = d->second.encode_ms;
    r.transfer_ms = transfer_ms(r.bytes + r.answer_bytes);
    r.rtt_ms = link.rtt_ms;
    r.decode_ms = s->second.decode_ms;
    r.server_ms = server.total_ms;
    r.server_macs = server.macs;
    r.total_ms = r.encode_ms + r.transfer_ms + r.rtt_ms + r.decode_ms + r.server_ms;
    plan.rows.push_back(r);
  };
  remote(key);
  remote("png");

  for (const auto& dc : device.cuts) {
    const CutTime* sc = server.find_cut(dc.tensor);
    if (sc == nullptr) {
      throw Error(both + " disagree: cut point '" + dc.tensor + "' is missing from " + server.model +
                  "'s profile; profile the same file with the same graft on both machines");
    }
    const auto dw = dc.wire.find(key);
    const auto sw = sc->wire.find(key);
    if (dw == dc.wire.end() || sw == sc->wire.end()) {
      throw Error(both + ": cut point '" + dc.tensor + "' has no '" + key + "' wire measured; profile again");
    }
    Row r;
    r.kind = Row::Kind::kSplit;
    r.tensor = dc.tensor;
    r.layer = dc.layer;
    r.row = dc.row;
    r.hybrid_split = device.split_point && *device.split_point == dc.tensor;
    r.wire = key;
    r.bytes = dw->second.bytes;
    r.answer_bytes = server.output_bytes;
    r.device_macs = dc.macs_before;
    r.server_macs = dc.macs_after;
    r.device_ms = dc.prefix_ms;
    r.encode_ms = dw->second.encode_ms;
    r.transfer_ms = transfer_ms(r.bytes + r.answer_bytes);
    r.rtt_ms = link.rtt_ms;
    r.decode_ms = sw->second.decode_ms;
    r.server_ms = sc->suffix_ms;
    r.total_ms = r.device_ms + r.encode_ms + r.transfer_ms + r.rtt_ms + r.decode_ms + r.server_ms;
    plan.rows.push_back(r);
  }
  for (size_t i = 1; i < plan.rows.size(); ++i) {
    if (plan.rows[i].total_ms < plan.rows[plan.best].total_ms) plan.best = i;
  }
  return plan;
}

nlohmann::json to_json(const Plan& plan) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : plan.rows) {
    const char* kind = r.kind == Row::Kind::kDevice ? "device" : r.kind == Row::Kind::kServer ? "server" : "split";
    nlohmann::json j = {{"kind", kind},           {"wire", r.wire},           {"bytes", r.bytes}, {"answer_bytes", r.answer_bytes},
                        {"device_macs", r.device_macs}, {"server_macs", r.server_macs}, {"device_ms", r.device_ms},
                        {"encode_ms", r.encode_ms}, {"transfer_ms", r.transfer_ms}, {"rtt_ms", r.rtt_ms},
                        {"decode_ms", r.decode_ms}, {"server_ms", r.server_ms},   {"total_ms", r.total_ms}};
    if (r.kind != Row::Kind::kDevice) j["tensor"] = r.tensor;
    if (r.kind == Row::Kind::kSplit) {
      j["layer"] = r.layer;
      j["row"] = r.row;
      if (r.hybrid_split) j["hybrid_split"] = true;
    }
    rows.push_back(j);
  }
  return {{"bandwidth_bits_per_s", plan.link.bits_per_s},
          {"bandwidth", bandwidth_str(plan.link.bits_per_s)},
          {"rtt_ms", plan.link.rtt_ms},
          {"codec", plan.options.codec},
          {"zstd", plan.options.zstd},
          {"batch", plan.batch},
          {"best", plan.best},
          {"best_ms", plan.rows.empty() ? 0.0 : plan.rows[plan.best].total_ms},
          {"best_is", plan.rows.empty() ? "" : plan.rows[plan.best].describe()},
          {"rows", rows}};
}

}  // namespace graft::plan
