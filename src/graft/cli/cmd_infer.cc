// graft infer DEV.onnx --server HOST:PORT — run the device half here, send the split tensor (fp32,
// fp16 or int8, optionally zstd) to an Open Inference Protocol server (graft serve, Triton,
// KServe), and print what comes back: top-k, accuracy over a dataset, per-phase times and
// bytes, or a load test (--concurrency).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/core/log.h"
#include "graft/data/dataset.h"
#include "graft/data/image.h"
#include "graft/data/npy.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/plan/planner.h"
#include "graft/serve/client.h"
#include "graft/serve/protocol.h"

namespace graft::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct InferArgs {
  std::string model, server, model_name, codec = "fp32", input, output, data, split = "test";
  std::string token, token_file, tls_ca, tls_server_name, limit_rate;
  std::vector<std::string> images;
  bool zstd = false, stats = false, json = false, tls = false;
  int64_t batch = 32, limit = 0, top = 5, concurrency = 0, requests = 100;
  int threads = 0;
  double timeout_s = 60;
};

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Per-request phase times (ms) and sizes.
struct Phases {
  std::vector<double> device, encode, rpc, total, server_compute, server_queue, server_handler;
  std::vector<double> network;  // rpc minus the server's receipt-to-reply time
  int64_t images = 0, payload_bytes = 0, request_bytes = 0, png_bytes = 0, png_images = 0;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// The device half, its split record, and the connection to the server half.
class Remote {
 public:
  explicit Remote(const InferArgs& a) : a_(a), codec_(serve::parse_codec(a.codec)) {
    ir::Graph g = read_model(a.model);
    if (g.inputs.size() != 1 || g.outputs.size() != 1) {
      throw Error(
          a.model +
          ": graft infer needs a device half with one input and one output (the split tensor); "
          "this model has " +
          std::to_string(g.inputs.size()) + " and " + std::to_string(g.outputs.size()) +
          " (make one with graft split)");
    }
    // Images and datasets need the device half's preprocessing; a preprocessed --input does not.
    try {
      pre_ = data::Preprocess::from_metadata(g, a.model);
    } catch (const Error& e) {
      pre_error_ = e.what();
    }
    input_ = g.inputs[0];
    split_ = g.outputs[0];
    const auto record =
        nlohmann::json::parse(g.get_metadata("graft.split").value_or("{}"), nullptr, false);
    model_name_ = a.model_name;
    if (model_name_.empty() && record.is_object() && record.contains("server")) {
      model_name_ = std::filesystem::path(record["server"].value("file", "")).stem().string();
    }
    if (model_name_.empty())
      throw Error(a.model + " has no graft.split record naming its server half; give --model NAME");
    try {
      labels_ = ir::metadata_string_list(g, ir::kMetaLabels);
    } catch (const Error&) {
    }
    exec::SessionOptions so;
    so.optimize = true;
    device_ = std::make_unique<exec::Session>(std::move(g), so, a.model);

    serve::ClientOptions co;
    co.target = a.server;
    co.token = a.token;
    co.tls = a.tls;
    co.tls_ca = a.tls_ca;
    co.tls_server_name = a.tls_server_name;
    co.timeout_s = a.timeout_s;
    if (!a.limit_rate.empty()) co.limit_bytes_per_s = plan::parse_bandwidth(a.limit_rate) / 8.0;
    client_ = std::make_unique<serve::Client>(co);
    const serve::ServerInfo info = client_->server_metadata();
    if ((codec_ != serve::Codec::kFp32 || a.zstd) && !info.has_extension(serve::kExtensionCodecs)) {
      throw Error(a.server + " (" + info.name + " " + info.version + ") does not decode graft's " +
                  (a.zstd ? "zstd" : a.codec) +
                  " codec (it is not graft serve); use --codec fp32 without --zstd");
    }
    const serve::ModelInfo m = client_->model_metadata(model_name_);
    if (m.inputs.size() != 1) {
      throw Error(a.server + ": model '" + model_name_ + "' takes " +
                  std::to_string(m.inputs.size()) + " inputs; the device half sends one");
    }
    server_input_ = m.inputs[0];
    if (server_input_.datatype != "FP32") {
      throw Error(a.server + ": model '" + model_name_ + "' input '" + server_input_.name +
                  "' is " + server_input_.datatype + "; the split tensor is FP32");
    }
    if (m.properties.count("max_batch")) {  // graft serve's limit: larger requests would be refused
      server_max_batch_ = std::atoll(m.properties.at("max_batch").c_str());
    }
    if (labels_.empty() && m.properties.count(ir::kMetaLabels)) {
      const auto l = nlohmann::json::parse(m.properties.at(ir::kMetaLabels), nullptr, false);
      if (l.is_array()) {
        for (const auto& s : l) labels_.push_back(s.is_string() ? s.get<std::string>() : "");
      }
    }
  }

  const data::Preprocess& preprocess() const {
    if (!pre_) throw Error(pre_error_ + " (give a preprocessed batch with --input x.npy instead)");
    return *pre_;
  }
  const std::vector<std::string>& labels() const { return labels_; }
  serve::Codec codec() const { return codec_; }
  serve::Client& client() { return *client_; }
  const std::string& model_name() const { return model_name_; }
  const std::string& server_input() const { return server_input_.name; }
  int64_t server_max_batch() const { return server_max_batch_; }

  // The split tensor of a preprocessed batch.
  at::Tensor device(const at::Tensor& x) {
    c10::InferenceMode guard;
    at::Tensor f = device_->run({{input_, x}}, {split_}).at(split_).to(at::kFloat).contiguous();
    const auto& want = server_input_.shape;
    bool ok = static_cast<int64_t>(want.size()) == f.dim();
    for (size_t i = 1; ok && i < want.size(); ++i)
      ok = want[i] < 0 || want[i] == f.size(static_cast<int64_t>(i));
    if (!ok) {
      std::string s = "[";
      for (size_t i = 0; i < want.size(); ++i) s += (i ? ", " : "") + std::to_string(want[i]);
      throw Error(a_.model + ": the split tensor '" + split_ + "' is " + c10::str(f.sizes()) +
                  " but model '" + model_name_ + "' at " + a_.server + " takes " + s +
                  "] (-1: any): are these halves of one split?");
    }
    return f;
  }

  // Runs one batch end to end; fills the phase times; returns the server's first output.
  at::Tensor run(const at::Tensor& x, Phases* p) {
    const auto t0 = Clock::now();
    const at::Tensor f = device(x);
    const double t_device = ms_since(t0);
    const auto t1 = Clock::now();
    const std::vector<int64_t> shape = f.sizes().vec();
    serve::Encoded e = serve::encode(f.data_ptr<float>(), shape, codec_, a_.zstd);
    const double t_encode = ms_since(t1);
    const auto t2 = Clock::now();
    serve::InferResult r = client_->infer(model_name_, server_input_.name, shape, std::move(e));
    const double t_rpc = ms_since(t2);
    if (r.outputs.empty())
      throw Error(a_.server + ": model '" + model_name_ + "' answered no outputs");
    p->device.push_back(t_device);
    p->encode.push_back(t_encode);
    p->rpc.push_back(t_rpc);
    p->total.push_back(ms_since(t0));
    p->server_compute.push_back(static_cast<double>(r.compute_us) / 1000);
    p->server_queue.push_back(static_cast<double>(r.queue_us) / 1000);
    p->server_handler.push_back(static_cast<double>(r.server_us) / 1000);
    p->network.push_back(t_rpc - static_cast<double>(r.server_us) / 1000);
    p->images += x.size(0);
    p->payload_bytes += static_cast<int64_t>(r.payload_bytes);
    p->request_bytes += static_cast<int64_t>(r.request_bytes);
    serve::OutputTensor& o = r.outputs[0];
    auto* owned = new std::vector<float>(std::move(o.data));
    return at::from_blob(
        owned->data(), o.shape, [owned](void*) { delete owned; }, at::kFloat);
  }

 private:
  const InferArgs& a_;
  serve::Codec codec_;
  std::optional<data::Preprocess> pre_;
  std::string pre_error_;
  std::string input_, split_, model_name_;
  std::vector<std::string> labels_;
  std::unique_ptr<exec::Session> device_;
  std::unique_ptr<serve::Client> client_;
  serve::TensorInfo server_input_;
  int64_t server_max_batch_ = 0;  // 0: not advertised
};

nlohmann::json stats_json(const Phases& p, const InferArgs& a) {
  const double n = static_cast<double>(std::max<int64_t>(p.images, 1));
  nlohmann::json j = {{"requests", p.total.size()},
                      {"images", p.images},
                      {"codec", a.codec},
                      {"zstd", a.zstd},
                      {"device_ms", mean(p.device)},
                      {"encode_ms", mean(p.encode)},
                      {"network_and_server_ms", mean(p.rpc)},
                      {"server_compute_ms", mean(p.server_compute)},
                      {"server_queue_ms", mean(p.server_queue)},
                      {"server_handler_ms", mean(p.server_handler)},
                      {"total_ms", mean(p.total)},
                      {"total_p50_ms", percentile(p.total, 0.5)},
                      {"device_p50_ms", percentile(p.device, 0.5)},
                      {"network_and_server_p50_ms", percentile(p.rpc, 0.5)},
                      {"server_compute_p50_ms", percentile(p.server_compute, 0.5)},
                      {"server_handler_p50_ms", percentile(p.server_handler, 0.5)},
                      {"network_p50_ms", percentile(p.network, 0.5)},
                      {"bytes_per_image", static_cast<double>(p.payload_bytes) / n},
                      {"request_bytes_per_image", static_cast<double>(p.request_bytes) / n}};
  if (p.png_images > 0)
    j["png_bytes_per_image"] = static_cast<double>(p.png_bytes) / static_cast<double>(p.png_images);
  return j;
}

void print_stats(const nlohmann::json& s) {
  std::printf(
      "per request (%lld requests, %lld images): device %.3f ms | encode %.3f ms | network + "
      "server %.3f ms "
      "(server compute %.3f, queue %.3f) | total %.3f ms\n",
      static_cast<long long>(s["requests"].get<int64_t>()),
      static_cast<long long>(s["images"].get<int64_t>()), s["device_ms"].get<double>(),
      s["encode_ms"].get<double>(), s["network_and_server_ms"].get<double>(),
      s["server_compute_ms"].get<double>(), s["server_queue_ms"].get<double>(),
      s["total_ms"].get<double>());
  std::printf("bytes per image: %.0f sent (%s%s), %.0f with the request's framing",
              s["bytes_per_image"].get<double>(), s["codec"].get<std::string>().c_str(),
              s["zstd"].get<bool>() ? " + zstd" : "", s["request_bytes_per_image"].get<double>());
  if (s.contains("png_bytes_per_image"))
    std::printf("; the input image as PNG: %.0f", s["png_bytes_per_image"].get<double>());
  std::printf("\n");
}

// --concurrency C --requests R: C threads each send R copies of one encoded batch.
nlohmann::json load_test(Remote& remote, const at::Tensor& x, const InferArgs& a) {
  const at::Tensor f = remote.device(x);
  const std::vector<int64_t> shape = f.sizes().vec();
  const serve::Encoded encoded = serve::encode(f.data_ptr<float>(), shape, remote.codec(), a.zstd);
  // One warm-up call (connection set-up, first-run allocations).
  remote.client().infer(remote.model_name(), remote.server_input(), shape, encoded);
  // The floor: gRPC's own round trip for an empty call (ServerLive), one client at a time.
  std::vector<double> empty;
  for (int i = 0; i < 200; ++i) {
    const auto t = Clock::now();
    remote.client().live();
    empty.push_back(ms_since(t));
  }
  std::vector<std::vector<double>> latency(static_cast<size_t>(a.concurrency)),
      overhead(latency.size()), handler_overhead(latency.size());
  std::atomic<int64_t> errors{0};
  std::string first_error;
  std::mutex mu;
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int64_t c = 0; c < a.concurrency; ++c) {
    threads.emplace_back([&, c] {
      for (int64_t r = 0; r < a.requests; ++r) {
        const auto t = Clock::now();
        try {
          const serve::InferResult res =
              remote.client().infer(remote.model_name(), remote.server_input(), shape, encoded);
          const double ms = ms_since(t);
          latency[c].push_back(ms);
          overhead[c].push_back(ms - static_cast<double>(res.compute_us) / 1000);
          handler_overhead[c].push_back(static_cast<double>(res.server_us - res.compute_us) / 1000);
        } catch (const Error& e) {
          if (errors++ == 0) {
            std::lock_guard<std::mutex> lock(mu);
            first_error = e.what();
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = ms_since(t0) / 1000;
  std::vector<double> all, over, handler;
  for (size_t c = 0; c < latency.size(); ++c) {
    all.insert(all.end(), latency[c].begin(), latency[c].end());
    over.insert(over.end(), overhead[c].begin(), overhead[c].end());
    handler.insert(handler.end(), handler_overhead[c].begin(), handler_overhead[c].end());
  }
  nlohmann::json j = {
      {"concurrency", a.concurrency},
      {"requests", a.concurrency * a.requests},
      {"batch", x.size(0)},
      {"codec", a.codec},
      {"zstd", a.zstd},
      {"errors", errors.load()},
      {"requests_per_s", static_cast<double>(all.size()) / seconds},
      {"images_per_s", static_cast<double>(all.size() * static_cast<size_t>(x.size(0))) / seconds},
      {"p50_ms", percentile(all, 0.5)},
      {"p99_ms", percentile(all, 0.99)},
      {"overhead_p50_us", 1000 * percentile(over, 0.5)},
      {"overhead_p99_us", 1000 * percentile(over, 0.99)},
      {"handler_overhead_p50_us", 1000 * percentile(handler, 0.5)},
      {"empty_call_p50_us", 1000 * percentile(empty, 0.5)},
      {"bytes_per_image",
       static_cast<double>(encoded.bytes.size()) / static_cast<double>(x.size(0))}};
  if (errors > 0) j["first_error"] = first_error;
  return j;
}

void run(InferArgs a) {
  a.token = bearer_token(a.token, a.token_file);
  const int sources =
      (a.images.empty() ? 0 : 1) + (a.input.empty() ? 0 : 1) + (a.data.empty() ? 0 : 1);
  if (sources != 1) throw Error("give one source: IMAGES…, --input x.npy or --data SPEC");
  if (a.threads > 0) at::set_num_threads(a.threads);
  Remote remote(a);
  if (remote.server_max_batch() > 0 && a.batch > remote.server_max_batch()) {
    log::info("the server takes at most " + std::to_string(remote.server_max_batch()) +
              " images a request: sending batches of that size");
    a.batch = remote.server_max_batch();
  }
  Phases phases;
  nlohmann::json j = {
      {"server", a.server}, {"model", remote.model_name()}, {"codec", a.codec}, {"zstd", a.zstd}};

  // The inputs as batches of preprocessed images (and, for --data, labels).
  std::vector<at::Tensor> batches, labels;
  std::vector<std::string> names;
  if (!a.images.empty()) {
    const data::Preprocess& pre = remote.preprocess();
    std::vector<at::Tensor> xs;
    for (const auto& path : a.images) {
      const at::Tensor image = data::read_image(path, pre.channels);
      const bool is_png = std::filesystem::path(path).extension() == ".png";
      phases.png_bytes += is_png ? static_cast<int64_t>(std::filesystem::file_size(path))
                                 : static_cast<int64_t>(data::encode_png(image).size());
      phases.png_images++;
      xs.push_back(data::preprocess(image, pre));
      names.push_back(path);
    }
    const at::Tensor all = at::stack(xs);
    for (int64_t s = 0; s < all.size(0); s += a.batch)
      batches.push_back(all.narrow(0, s, std::min(a.batch, all.size(0) - s)));
  } else if (!a.input.empty()) {
    const at::Tensor x = data::read_npy(a.input).to(at::kFloat);
    if (x.dim() == 0) throw Error(a.input + ": a scalar; the device half takes a batch");
    for (int64_t s = 0; s < x.size(0); s += a.batch)
      batches.push_back(x.narrow(0, s, std::min(a.batch, x.size(0) - s)));
  } else {
    const data::Preprocess& pre = remote.preprocess();
    const data::Dataset d = data::head(data::open_dataset(a.data, a.split), a.limit);
    for (int64_t s = 0; s < d.size(); s += a.batch) {
      const int64_t n = std::min(a.batch, d.size() - s);
      const at::Tensor raw = d.images.narrow(0, s, n);
      batches.push_back(data::preprocess_batch(raw, pre));
      labels.push_back(d.labels.narrow(0, s, n));
      if (a.stats && s == 0) {  // the PNG size of the images sent (a sample: the first batch)
        for (int64_t i = 0; i < n; ++i)
          phases.png_bytes += static_cast<int64_t>(data::encode_png(raw[i]).size());
        phases.png_images += n;
      }
    }
    j["data"] = a.data;
    j["split"] = a.split;
  }
  if (batches.empty()) throw Error("no inputs: the source is empty");

  if (a.concurrency > 0) {
    const nlohmann::json r = load_test(remote, batches[0], a);
    if (a.json) {
      std::printf("%s\n", r.dump(1).c_str());
    } else {
      std::printf(
          "%lld clients x %lld requests of batch %lld (%s%s): %.1f requests/s, %.1f images/s; "
          "latency p50 %.3f ms, "
          "p99 %.3f ms; overhead (latency - model compute) p50 %.0f us, p99 %.0f us; in the "
          "server's handler "
          "p50 %.0f us; an empty call (ServerLive) p50 %.0f us; %.0f bytes/image; %lld errors\n",
          static_cast<long long>(a.concurrency), static_cast<long long>(a.requests),
          static_cast<long long>(batches[0].size(0)), a.codec.c_str(), a.zstd ? " + zstd" : "",
          r["requests_per_s"].get<double>(), r["images_per_s"].get<double>(),
          r["p50_ms"].get<double>(), r["p99_ms"].get<double>(), r["overhead_p50_us"].get<double>(),
          r["overhead_p99_us"].get<double>(), r["handler_overhead_p50_us"].get<double>(),
          r["empty_call_p50_us"].get<double>(), r["bytes_per_image"].get<double>(),
          static_cast<long long>(r["errors"].get<int64_t>()));
      if (r.contains("first_error"))
        std::printf("first error: %s\n", r["first_error"].get<std::string>().c_str());
    }
    if (r["errors"].get<int64_t>() > 0)
      throw Error("the load test had errors", ErrorKind::kInternal);
    return;
  }

  std::vector<at::Tensor> results;
  int64_t correct = 0, seen = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const at::Tensor y = remote.run(batches[b], &phases);
    if (y.dim() != 2 || y.size(0) != batches[b].size(0)) {
      throw Error(a.server + ": model '" + remote.model_name() + "' answered " +
                  c10::str(y.sizes()) + " for a batch of " + std::to_string(batches[b].size(0)) +
                  "; expected (batch, classes)");
    }
    if (!labels.empty()) {
      correct += y.argmax(1).eq(labels[b]).sum().item<int64_t>();
      seen += y.size(0);
    }
    if (labels.empty() || !a.output.empty()) results.push_back(y);
  }
  if (!a.output.empty()) {
    data::write_npy(at::cat(results, 0), a.output);
  }
  if (!labels.empty()) {
    j["count"] = seen;
    j["top1"] = static_cast<double>(correct) / static_cast<double>(seen);
  } else if (a.top > 0) {
    const nlohmann::json top = top_k(at::cat(results, 0), a.top, remote.labels());
    for (size_t n = 0; n < top.size(); ++n) {
      j["top"].push_back({{"item", n < names.size() ? names[n] : "item " + std::to_string(n)},
                          {"classes", top[n]}});
    }
  }
  if (a.stats) j["stats"] = stats_json(phases, a);
  if (a.json) {
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  if (j.contains("top1")) {
    std::printf("%s, %s split, through %s (%s%s): top-1 %.2f%% over %lld images\n", a.data.c_str(),
                a.split.c_str(), a.server.c_str(), a.codec.c_str(), a.zstd ? " + zstd" : "",
                100 * j["top1"].get<double>(), static_cast<long long>(seen));
  }
  if (j.contains("top")) {
    for (const auto& item : j["top"]) print_top_k(item["item"].get<std::string>(), item["classes"]);
  }
  if (!a.output.empty()) std::printf("wrote %s (the server's output)\n", a.output.c_str());
  if (a.stats) print_stats(j["stats"]);
}

}  // namespace

Command add_infer_command(CLI::App& root) {
  auto args = std::make_shared<InferArgs>();
  CLI::App* app =
      root.add_subcommand("infer", "Run the device half here and the server half on a server");
  app->add_option("model", args->model, "The device half (from graft split)")->required();
  app->add_option("images", args->images, "PNG/JPEG images to classify");
  app->add_option("--server", args->server, "HOST:PORT of graft serve, Triton or KServe")
      ->required();
  app->add_option("--model", args->model_name,
                  "Model name on the server (default: the server half's file stem)");
  app->add_option("--codec", args->codec,
                  "How the split tensor travels: fp32 (default), fp16 or int8")
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}));
  app->add_flag("--zstd", args->zstd, "zstd-compress the split tensor (graft serve only)");
  app->add_option("--input", args->input, "x.npy: a preprocessed batch for the device half");
  app->add_option("--output", args->output, "y.npy: save the server's output");
  app->add_option(
      "--data", args->data,
      "Accuracy over a dataset: fashion-mnist, an IDX directory, an image folder, X.npy,Y.npy");
  app->add_option("--split", args->split, "With --data: train or test (default test)")
      ->check(CLI::IsMember({"train", "test"}));
  app->add_option("--limit", args->limit, "With --data: only the first N examples")
      ->check(CLI::PositiveNumber);
  app->add_option("--batch", args->batch, "Images per request (default 32)")
      ->check(CLI::PositiveNumber);
  app->add_option("--top", args->top, "Print the top K classes (default 5)")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--stats", args->stats,
                "Per-phase times and bytes sent per image (beside the image's PNG size)");
  app->add_option(
         "--concurrency", args->concurrency,
         "Load test: this many concurrent callers (one connection), each sending --requests "
         "copies of the first batch")
      ->check(CLI::PositiveNumber);
  app->add_option("--requests", args->requests,
                  "Requests per caller in the load test (default 100)")
      ->check(CLI::PositiveNumber);
  app->add_option("--token", args->token, "Bearer token");
  app->add_option("--token-file", args->token_file, "Read the bearer token from this file");
  app->add_flag("--tls", args->tls,
                "Use TLS (verifying the server against the system's roots, or --tls-ca)");
  app->add_option("--tls-ca", args->tls_ca, "PEM certificate(s) to trust (implies --tls)");
  app->add_option("--tls-server-name", args->tls_server_name,
                  "The name the server's certificate must carry");
  app->add_option("--limit-rate", args->limit_rate,
                  "Limit the bandwidth to the server, each way (10Mbit/s, 1Gbit/s, …): every request waits "
                  "its size / rate before it is sent, as on a slower link (for checking graft plan)");
  app->add_option("--timeout-s", args->timeout_s, "Per-call deadline (default 60)")
      ->check(CLI::PositiveNumber);
  app->add_option("--threads", args->threads, "Intra-op threads of the device half")
      ->check(CLI::PositiveNumber);
  app->add_flag("--json", args->json, "Machine-readable output");
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
