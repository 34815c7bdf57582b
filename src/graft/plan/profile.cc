#include "graft/plan/profile.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <unordered_map>

#include "graft/core/error.h"
#include "graft/core/stats.h"
#include "graft/core/file.h"
#include "graft/core/sha256.h"
#include "graft/core/version.h"
#include "graft/cut/cut.h"
#include "graft/data/image.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/summary.h"
#include "graft/serve/codec.h"

namespace graft::plan {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The fastest of `repeats` calls of f, in ms.
double fastest(int repeats, const std::function<void()>& f) {
  double best = 0;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    const auto t = Clock::now();
    f();
    const double ms = ms_since(t);
    if (i == 0 || ms < best) best = ms;
  }
  return best;
}

// Every codec's wire for one float tensor.
std::map<std::string, Wire> measure_wire(const at::Tensor& value, int repeats) {
  const at::Tensor t = value.to(at::kFloat).contiguous();
  const std::vector<int64_t> shape = t.sizes().vec();
  std::map<std::string, Wire> wires;
  for (const serve::Codec codec : {serve::Codec::kFp32, serve::Codec::kFp16, serve::Codec::kInt8}) {
    for (const bool zstd : {false, true}) {
      serve::Encoded e;
      Wire w;
      w.encode_ms = fastest(repeats, [&] { e = serve::encode(t.data_ptr<float>(), shape, codec, zstd); });
      w.bytes = static_cast<int64_t>(e.bytes.size());
      w.decode_ms = fastest(repeats, [&] {
        (void)serve::decode(e.datatype, shape, e.bytes, e.zstd, e.scale, e.zero_point);
      });
      wires[wire_key(serve::codec_name(codec), zstd)] = w;
    }
  }
  return wires;
}

// For every step of a profiled run, the index of the original node it is attributed to (-1:
// none found).
class Attribution {
 public:
  Attribution(const ir::Graph& original, const ir::Graph& optimized) : original_(original), optimized_(optimized) {
    for (size_t i = 0; i < original.nodes.size(); ++i) by_name_[original.nodes[i].name] = static_cast<int>(i);
  }

  int node_of(const exec::StepTime& step) const {
    if (step.op == "Reorder") return value_owner(step.node, 0);
    return node_owner(step.node, 0);
  }

 private:
  // A node of the optimised graph -> the original node of that name, else the producer of one
  // of its outputs in the original graph.
  int node_owner(const std::string& name, int depth) const {
    if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
    const int i = optimized_.find_node(name);
    if (i < 0 || depth > 8) return -1;
    for (const auto& out : optimized_.nodes[static_cast<size_t>(i)].outputs) {
      if (original_.has_value(out) && original_.value(out).producer >= 0) return original_.value(out).producer;
    }
    // A node a pass inserted (a layout change before a normalisation): its input's owner.
    for (const auto& in : optimized_.nodes[static_cast<size_t>(i)].inputs) {
      if (!in.empty() && optimized_.has_value(in) && !optimized_.value(in).is_initializer) {
        const int owner = value_owner(in, depth + 1);
        if (owner >= 0) return owner;
      }
    }
    return -1;
  }

  // A value -> the original node producing it; graph inputs belong to their first consumer.
  int value_owner(const std::string& value, int depth) const {
    if (original_.has_value(value)) {
      const ir::Value& v = original_.value(value);
      if (v.producer >= 0) return v.producer;
      if (!v.consumers.empty()) return v.consumers.front();
    }
    if (optimized_.has_value(value)) {
      const ir::Value& v = optimized_.value(value);
      if (v.producer >= 0) return node_owner(optimized_.nodes[static_cast<size_t>(v.producer)].name, depth + 1);
    }
    return -1;
  }

  const ir::Graph& original_;
  const ir::Graph& optimized_;
  std::unordered_map<std::string, int> by_name_;
};

// The nodes head(tensor) runs: every ancestor of the tensor's producer.
std::vector<bool> ancestors(const ir::Graph& g, const std::string& tensor) {
  std::vector<bool> in(g.nodes.size(), false);
  std::vector<int> stack;
  if (g.value(tensor).producer >= 0) stack.push_back(g.value(tensor).producer);
  while (!stack.empty()) {
    const int n = stack.back();
    stack.pop_back();
    if (in[static_cast<size_t>(n)]) continue;
    in[static_cast<size_t>(n)] = true;
    for (const auto& x : g.nodes[static_cast<size_t>(n)].inputs) {
      if (!x.empty() && g.has_value(x) && g.value(x).producer >= 0) stack.push_back(g.value(x).producer);
    }
  }
  return in;
}

Wire wire_from_json(const nlohmann::json& j) {
  Wire w;
  w.bytes = j.at("bytes").get<int64_t>();
  w.encode_ms = j.at("encode_ms").get<double>();
  w.decode_ms = j.at("decode_ms").get<double>();
  if (w.bytes < 0 || w.encode_ms < 0 || w.decode_ms < 0) throw Error("negative bytes or time");
  return w;
}

nlohmann::json wires_json(const std::map<std::string, Wire>& wires) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, w] : wires) j[k] = {{"bytes", w.bytes}, {"encode_ms", w.encode_ms}, {"decode_ms", w.decode_ms}};
  return j;
}

std::map<std::string, Wire> wires_from_json(const nlohmann::json& j) {
  std::map<std::string, Wire> wires;
  for (const auto& [k, v] : j.items()) wires[k] = wire_from_json(v);
  return wires;
}

std::string read_line_of(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

}  // namespace

std::string wire_key(const std::string& codec, bool zstd) { return zstd ? codec + "+zstd" : codec; }

const CutTime* Profile::find_cut(const std::string& tensor) const {
  for (const auto& c : cuts) {
    if (c.tensor == tensor) return &c;
  }
  return nullptr;
}

Machine this_machine(int threads) {
  Machine m;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) m.host = host;
  m.cpu = read_line_of("/proc/cpuinfo", "model name");
  m.cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  m.threads = threads;
  m.graft = kVersion;
  return m;
}

const std::string& single_input(const ir::Graph& graph, const std::string& path) {
  if (graph.inputs.size() != 1) {
    throw Error(path + ": graft profile needs a model with one input; this one has " +
                std::to_string(graph.inputs.size()));
  }
  return graph.inputs[0];
}

Profile measure(const ir::Graph& graph, const ir::Graph& per_image, const at::Tensor& input,
                const ProfileOptions& o) {
  const std::string& path = o.model_path;
  single_input(graph, path);
  if (o.runs < 1) throw Error("graft profile: --runs must be at least 1");
  Profile p;
  p.model = path;
  if (!path.empty()) p.sha256 = sha256_file(path);
  p.created = utc_now();
  p.machine = this_machine(at::get_num_threads());
  p.batch = input.size(0);
  p.runs = o.runs;
  p.input_name = graph.inputs[0];
  p.input_source = o.input_source;
  p.input_shape = input.sizes().vec();
  p.macs = ir::summarize(per_image).macs;
  for (const auto& out : graph.outputs) {
    const auto sizes = ir::known_sizes(graph.value(out).shape);
    if (!sizes) throw Error(path + ": output '" + out + "' has no known shape; fix the input shape with --input-shape");
    int64_t n = 4;
    for (int64_t d : *sizes) n *= d;
    p.output_bytes += n;
  }
  if (const auto cut = graph.get_metadata(ir::kMetaCut)) {
    const auto record = nlohmann::json::parse(*cut, nullptr, false);
    if (record.is_object() && record.contains("split_point") && record["split_point"].is_string()) {
      p.split_point = record["split_point"].get<std::string>();
    }
  }
  c10::InferenceMode guard;
  const exec::TensorMap inputs{{p.input_name, input}};

  // The whole model's latency, then the same runs step by step.
  exec::SessionOptions so;
  so.optimize = true;
  exec::Session session(graph, so, path);
  for (int64_t i = 0; i < std::max<int64_t>(o.warmup, 1); ++i) session.run(inputs);
  std::vector<double> ms;
  for (int64_t i = 0; i < o.runs; ++i) {
    const auto t = Clock::now();
    session.run(inputs);
    ms.push_back(ms_since(t));
  }
  p.total_ms = percentile(ms, 0.5);
  p.p90_ms = percentile(ms, 0.9);

  std::vector<double> node_ms(graph.nodes.size(), 0.0);
  const Attribution attribution(graph, session.graph());
  std::vector<exec::StepTime> steps;
  exec::RunOptions ro;
  ro.profile = &steps;
  double unattributed = 0, sum = 0;
  for (int64_t i = 0; i < o.runs; ++i) {
    steps.clear();
    session.run(inputs, {}, ro);
    for (const auto& st : steps) {
      const int n = attribution.node_of(st);
      (n >= 0 ? node_ms[static_cast<size_t>(n)] : unattributed) += st.ms;
      sum += st.ms;
    }
  }
  if (sum <= 0) {
    throw Error(path + ": the profiled runs recorded no steps (the model does not run on graft's oneDNN path)",
                ErrorKind::kInternal);
  }
  const double runs = static_cast<double>(o.runs);
  p.step_sum_ms = sum / runs;
  p.unattributed_ms = unattributed / runs;
  p.scale = p.total_ms / p.step_sum_ms;
  const auto rows = ir::node_rows(graph);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    p.nodes.push_back({graph.nodes[i].name, graph.nodes[i].op_type, rows[i], node_ms[i] / runs});
  }

  // Prefix and suffix of every cut point. Unattributed time is spread like the attributed.
  const double spread = p.step_sum_ms / std::max(p.step_sum_ms - p.unattributed_ms, 1e-12);
  for (const auto& point : cut::cut_points(per_image)) {
    CutTime c;
    c.tensor = point.tensor;
    c.layer = per_image.nodes[static_cast<size_t>(point.node)].name;
    c.row = point.row;
    c.macs_before = point.macs_before;
    c.macs_after = point.macs_after;
    const auto head = ancestors(graph, point.tensor);
    double before = 0;
    for (size_t i = 0; i < head.size(); ++i) {
      if (head[i]) before += p.nodes[i].ms;
    }
    c.prefix_ms = std::min(before * spread * p.scale, p.total_ms);
    c.suffix_ms = p.total_ms - c.prefix_ms;
    p.cuts.push_back(std::move(c));
  }

  // The cut tensors' values (the reference kernels: every value stays requestable), a few
  // hundred MB at a time, and what each costs on the wire.
  exec::Session reference(graph, {}, path);
  const int64_t budget = int64_t{256} << 20;
  for (size_t first = 0; first < p.cuts.size();) {
    std::vector<std::string> names;
    int64_t bytes = 0;
    size_t last = first;
    for (; last < p.cuts.size() && (names.empty() || bytes < budget); ++last) {
      names.push_back(p.cuts[last].tensor);
      const auto sizes = ir::known_sizes(graph.value(p.cuts[last].tensor).shape);
      int64_t n = 4;
      if (sizes) {
        for (int64_t d : *sizes) n *= d;
      }
      bytes += n;
    }
    const exec::TensorMap values = reference.run(inputs, names);
    for (size_t i = first; i < last; ++i) {
      const at::Tensor& v = values.at(p.cuts[i].tensor);
      p.cuts[i].shape = v.sizes().vec();
      p.cuts[i].wire = measure_wire(v, o.codec_repeats);
    }
    first = last;
  }
  p.input_wire = measure_wire(input, o.codec_repeats);
  if (o.image != nullptr && o.image->defined()) {
    const std::string png = data::encode_png(*o.image);
    const data::Preprocess pre = data::Preprocess::from_metadata(graph, path);
    Wire w;
    w.bytes = static_cast<int64_t>(png.size());
    w.decode_ms = fastest(o.codec_repeats, [&] {
      (void)data::preprocess(data::decode_image(png, pre.channels, path + " (input image)"), pre);
    }) * static_cast<double>(p.batch);
    w.bytes *= p.batch;
    p.input_wire["png"] = w;
  }
  return p;
}

nlohmann::json to_json(const Profile& p) {
  nlohmann::json nodes = nlohmann::json::array(), cuts = nlohmann::json::array();
  for (const auto& n : p.nodes) nodes.push_back({{"name", n.name}, {"op", n.op}, {"row", n.row}, {"ms", n.ms}});
  for (const auto& c : p.cuts) {
    cuts.push_back({{"tensor", c.tensor}, {"layer", c.layer}, {"row", c.row}, {"shape", c.shape},
                    {"macs_before", c.macs_before}, {"macs_after", c.macs_after}, {"prefix_ms", c.prefix_ms},
                    {"suffix_ms", c.suffix_ms}, {"wire", wires_json(c.wire)}});
  }
  nlohmann::json j = {
      {"graft_profile", kProfileFormat},
      {"model", p.model},
      {"sha256", p.sha256},
      {"created", p.created},
      {"machine",
       {{"host", p.machine.host}, {"cpu", p.machine.cpu}, {"cores", p.machine.cores},
        {"threads", p.machine.threads}, {"graft", p.machine.graft}}},
      {"batch", p.batch},
      {"runs", p.runs},
      {"input", {{"name", p.input_name}, {"shape", p.input_shape}, {"source", p.input_source}, {"wire", wires_json(p.input_wire)}}},
      {"total_ms", p.total_ms},
      {"p90_ms", p.p90_ms},
      {"step_sum_ms", p.step_sum_ms},
      {"scale", p.scale},
      {"unattributed_ms", p.unattributed_ms},
      {"macs", p.macs},
      {"output_bytes", p.output_bytes},
      {"nodes", nodes},
      {"cut_points", cuts}};
  if (p.split_point) j["split_point"] = *p.split_point;
  return j;
}

Profile from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object() || !j.contains("graft_profile")) {
    throw Error(origin + " is not a graft profile (no \"graft_profile\" key); make one with graft profile MODEL -o FILE");
  }
  if (j["graft_profile"] != kProfileFormat) {
    throw Error(origin + ": profile format " + j["graft_profile"].dump() + " is not " +
                std::to_string(kProfileFormat) + "; profile the model again with this graft");
  }
  try {
    Profile p;
    p.model = j.at("model").get<std::string>();
    p.sha256 = j.at("sha256").get<std::string>();
    p.created = j.value("created", "");
    const auto& m = j.at("machine");
    p.machine = {m.value("host", ""), m.value("cpu", ""), m.value("cores", 0), m.value("threads", 0), m.value("graft", "")};
    p.batch = j.at("batch").get<int64_t>();
    p.runs = j.at("runs").get<int64_t>();
    const auto& in = j.at("input");
    p.input_name = in.at("name").get<std::string>();
    p.input_shape = in.at("shape").get<std::vector<int64_t>>();
    p.input_source = in.value("source", "");
    p.input_wire = wires_from_json(in.at("wire"));
    p.total_ms = j.at("total_ms").get<double>();
    p.p90_ms = j.value("p90_ms", p.total_ms);
    p.step_sum_ms = j.at("step_sum_ms").get<double>();
    p.scale = j.value("scale", 1.0);
    p.unattributed_ms = j.value("unattributed_ms", 0.0);
    p.macs = j.value("macs", int64_t{0});
    p.output_bytes = j.at("output_bytes").get<int64_t>();
    if (p.output_bytes < 0) throw Error("negative output_bytes");
    for (const auto& n : j.at("nodes")) {
      p.nodes.push_back({n.at("name").get<std::string>(), n.at("op").get<std::string>(), n.at("row").get<int64_t>(),
                         n.at("ms").get<double>()});
    }
    for (const auto& c : j.at("cut_points")) {
      CutTime t;
      t.tensor = c.at("tensor").get<std::string>();
      t.layer = c.value("layer", "");
      t.row = c.at("row").get<int64_t>();
      t.shape = c.at("shape").get<std::vector<int64_t>>();
      t.macs_before = c.at("macs_before").get<int64_t>();
      t.macs_after = c.at("macs_after").get<int64_t>();
      t.prefix_ms = c.at("prefix_ms").get<double>();
      t.suffix_ms = c.at("suffix_ms").get<double>();
      t.wire = wires_from_json(c.at("wire"));
      if (t.prefix_ms < 0 || t.suffix_ms < 0) throw Error("cut point '" + t.tensor + "' has a negative time");
      p.cuts.push_back(std::move(t));
    }
    if (j.contains("split_point") && j["split_point"].is_string()) p.split_point = j["split_point"].get<std::string>();
    if (p.batch < 1 || p.total_ms < 0) throw Error("batch below 1 or a negative time");
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": malformed graft profile (" + e.what() + "); profile the model again");
  } catch (const Error& e) {
    throw Error(origin + ": malformed graft profile: " + e.what());
  }
}

Profile read_profile(const std::string& path) {
  const auto j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded()) throw Error(path + " is not JSON; a graft profile is the JSON graft profile -o writes");
  return from_json(j, path);
}

}  // namespace graft::plan
