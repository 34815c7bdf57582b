#include "graft/serve/server.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/core/log.h"
#include "graft/core/version.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/serve/codec.h"
#include "graft/serve/grpc_log.h"
#include "graft/serve/inference.grpc.pb.h"
#include "graft/serve/protocol.h"
#include "graft/serve/request.h"

namespace graft::serve {
namespace {

namespace pb = ::inference;
using Clock = std::chrono::steady_clock;

int64_t micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// What the batcher hands back to one request.
struct Outcome {
  std::vector<at::Tensor> outputs;  // this request's rows of every graph output
  std::string error;
  bool cancelled = false;  // dropped before its batch ran: its caller had gone
  int64_t queue_us = 0, compute_us = 0, batch = 0;
};

struct Pending {
  at::Tensor input;  // (n, …) float32
  Clock::time_point enqueued;
  std::promise<Outcome> promise;
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
};

// Equal-time comparison, so a wrong token's timing tells nothing about the right one.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(b.size(), 1)]);
  return diff == 0;
}

void set_int(google::protobuf::Map<std::string, pb::InferParameter>* params, const char* key,
             int64_t v) {
  (*params)[key].set_int64_param(v);
}

}  // namespace

struct Server::Impl final : pb::GRPCInferenceService::Service {
  ServerOptions options;
  std::string name;
  exec::Session session;
  std::string input_name;
  std::vector<int64_t> input_dims;  // -1 where any size goes (the batch, symbolic dimensions)
  std::vector<std::string> output_names;
  std::vector<std::vector<int64_t>> output_dims;
  std::map<std::string, std::string> properties;

  std::unique_ptr<grpc::Server> grpc_server;
  int bound_port = 0;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Pending>> queue;
  int64_t queued_images = 0;
  bool stopping = false;
  bool running = false;  // a model run is in progress (the batcher's, or a handler's inline one)
  std::thread worker;
  std::once_flag shutdown_once;

  std::atomic<int64_t> n_requests{0}, n_errors{0}, n_full{0}, n_runs{0}, n_images{0};

  Impl(ServerOptions opts, exec::Session s) : options(std::move(opts)), session(std::move(s)) {}

  // ---- the batcher ----

  void run_worker() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return (stopping && queue.empty()) || (!queue.empty() && !running); });
      if (queue.empty()) return;  // stopping, nothing left
      const Clock::time_point deadline =
          queue.front()->enqueued + std::chrono::microseconds(options.max_delay_us);
      while (!stopping && queued_images < options.max_batch && Clock::now() < deadline) {
        cv.wait_until(lock, deadline);
      }
      // Take requests in order while they fit one batch and share the first one's shape.
      std::vector<std::unique_ptr<Pending>> batch;
      int64_t images = 0;
      const auto first_sizes = queue.front()->input.sizes().slice(1).vec();
      while (!queue.empty()) {
        Pending& p = *queue.front();
        const int64_t n = p.input.size(0);
        if (!batch.empty() &&
            (images + n > options.max_batch || p.input.sizes().slice(1).vec() != first_sizes))
          break;
        images += n;
        queued_images -= n;
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      running = true;
      lock.unlock();
      run_batch(batch);
      lock.lock();
      running = false;
    }
  }

  void run_batch(std::vector<std::unique_ptr<Pending>>& batch) {
    // Requests whose callers gave up are dropped before they cost compute.
    std::vector<std::unique_ptr<Pending>> live;
    for (auto& p : batch) {
      if (p->cancelled->load()) {
        Outcome dropped;
        dropped.cancelled = true;
        p->promise.set_value(std::move(dropped));
      } else {
        live.push_back(std::move(p));
      }
    }
    if (live.empty()) return;
    const Clock::time_point start = Clock::now();
    Outcome shared;
    std::vector<at::Tensor> outputs;
    try {
      c10::InferenceMode guard;
      std::vector<at::Tensor> inputs;
      for (auto& p : live) inputs.push_back(p->input);
      const at::Tensor x = inputs.size() == 1 ? inputs[0] : at::cat(inputs, 0);
      exec::TensorMap out = session.run({{input_name, x}}, output_names);
      for (const auto& o : output_names) outputs.push_back(out.at(o).to(at::kFloat).contiguous());
      shared.batch = x.size(0);
    } catch (const std::exception& e) {
      shared.error = e.what();
    }
    shared.compute_us = micros(Clock::now() - start);
    n_runs++;
    int64_t row = 0;
    for (auto& p : live) {
      Outcome o = shared;
      o.queue_us = micros(start - p->enqueued);
      const int64_t n = p->input.size(0);
      if (o.error.empty()) {
        for (const auto& t : outputs) {
          if (t.dim() == 0 || t.size(0) != shared.batch) {
            o.error = "output of shape " + c10::str(t.sizes()) + " for a batch of " +
                      std::to_string(shared.batch) +
                      ": graft serve needs the batch as every output's first dimension";
            o.outputs.clear();
            break;
          }
          o.outputs.push_back(t.narrow(0, row, n));
        }
      }
      n_images += n;
      row += n;
      p->promise.set_value(std::move(o));
    }
  }

  // ---- the RPCs ----

  grpc::Status authorize(const grpc::ServerContext* ctx) const {
    if (options.token.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    const auto it = md.find("authorization");
    if (it == md.end()) {
      return {grpc::StatusCode::UNAUTHENTICATED,
              "missing bearer token: send metadata 'authorization: Bearer TOKEN'"};
    }
    const std::string value(it->second.data(), it->second.size());
    if (value.rfind("Bearer ", 0) != 0 || !same_secret(value.substr(7), options.token)) {
      return {grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token"};
    }
    return grpc::Status::OK;
  }

  grpc::Status check_model(const std::string& model, const std::string& version) const {
    if (model != name) {
      return {grpc::StatusCode::NOT_FOUND,
              "unknown model '" + model + "': this server serves '" + name + "'"};
    }
    if (!version.empty() && version != kModelVersion) {
      return {grpc::StatusCode::NOT_FOUND, "model '" + name + "' has no version '" + version +
                                               "' (only '" + std::string(kModelVersion) + "')"};
    }
    return grpc::Status::OK;
  }

  grpc::Status ServerLive(grpc::ServerContext*, const pb::ServerLiveRequest*,
                          pb::ServerLiveResponse* r) override {
    r->set_live(true);
    return grpc::Status::OK;
  }

  grpc::Status ServerReady(grpc::ServerContext*, const pb::ServerReadyRequest*,
                           pb::ServerReadyResponse* r) override {
    std::lock_guard<std::mutex> lock(mu);
    r->set_ready(!stopping);
    return grpc::Status::OK;
  }

  grpc::Status ModelReady(grpc::ServerContext* ctx, const pb::ModelReadyRequest* req,
                          pb::ModelReadyResponse* r) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    if (auto s = check_model(req->name(), req->version()); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu);
    r->set_ready(!stopping);
    return grpc::Status::OK;
  }

  grpc::Status ServerMetadata(grpc::ServerContext* ctx, const pb::ServerMetadataRequest*,
                              pb::ServerMetadataResponse* r) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    r->set_name("graft");
    r->set_version(kVersion);
    r->add_extensions(kExtensionCodecs);
    return grpc::Status::OK;
  }

  grpc::Status ModelMetadata(grpc::ServerContext* ctx, const pb::ModelMetadataRequest* req,
                             pb::ModelMetadataResponse* r) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    if (auto s = check_model(req->name(), req->version()); !s.ok()) return s;
    r->set_name(name);
    r->add_versions(kModelVersion);
    r->set_platform("graft_onnx");
    auto* in = r->add_inputs();
    in->set_name(input_name);
    in->set_datatype("FP32");
    for (int64_t d : input_dims) in->add_shape(d);
    for (size_t i = 0; i < output_names.size(); ++i) {
      auto* out = r->add_outputs();
      out->set_name(output_names[i]);
      out->set_datatype("FP32");
      for (int64_t d : output_dims[i]) out->add_shape(d);
    }
    for (const auto& [k, v] : properties) (*r->mutable_properties())[k] = v;
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext* ctx, const pb::ModelInferRequest* req,
                          pb::ModelInferResponse* resp) override {
    const Clock::time_point received = Clock::now();
    n_requests++;
    grpc::Status status = infer(ctx, req, resp, received);
    if (!status.ok()) n_errors++;
    return status;
  }

  grpc::Status infer(grpc::ServerContext* ctx, const pb::ModelInferRequest* req,
                     pb::ModelInferResponse* resp, Clock::time_point received) {
    using grpc::StatusCode;
    if (auto s = authorize(ctx); !s.ok()) return s;
    if (auto s = check_model(req->model_name(), req->model_version()); !s.ok()) return s;
    RequestSignature sig{name, input_name, input_dims, output_names, options.max_batch};
    DecodedRequest decoded;
    if (auto s = decode_request(*req, sig, &decoded); !s.ok()) return s;
    std::vector<int64_t> shape = std::move(decoded.shape);
    std::vector<float> values = std::move(decoded.values);
    const std::vector<size_t> order = std::move(decoded.order);

    auto owned = std::make_unique<std::vector<float>>(std::move(values));
    float* data = owned->data();
    at::Tensor x = at::from_blob(
        data, shape, [keep = owned.release()](void*) { delete keep; }, at::kFloat);

    auto pending = std::make_unique<Pending>();
    pending->input = std::move(x);
    pending->enqueued = Clock::now();
    std::future<Outcome> future = pending->promise.get_future();
    const auto cancelled = pending->cancelled;
    bool inline_run = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return {StatusCode::UNAVAILABLE, "the server is shutting down"};
      if (static_cast<int64_t>(queue.size()) >= options.max_queue) {
        n_full++;
        return {StatusCode::RESOURCE_EXHAUSTED,
                "the queue is full (" + std::to_string(queue.size()) +
                    " requests waiting); retry later, or raise --max-queue"};
      }
      // Nothing to wait for and nobody to batch with: run it on this thread, which saves two
      // thread hand-offs (the batcher's wake-up and ours). Requests arriving meanwhile queue up
      // and the batcher runs them together as soon as this run ends.
      if (queue.empty() && !running && options.max_delay_us == 0) {
        running = true;
        inline_run = true;
      } else {
        queued_images += pending->input.size(0);
        queue.push_back(std::move(pending));
      }
    }
    if (inline_run) {
      std::vector<std::unique_ptr<Pending>> one;
      one.push_back(std::move(pending));
      run_batch(one);
      {
        std::lock_guard<std::mutex> lock(mu);
        running = false;
      }
    }
    cv.notify_all();
    while (future.wait_for(std::chrono::milliseconds(2)) != std::future_status::ready) {
      if (ctx->IsCancelled()) {
        cancelled->store(true);
        return {StatusCode::CANCELLED, "the client cancelled the call"};
      }
    }
    Outcome outcome = future.get();
    if (outcome.cancelled) return {StatusCode::CANCELLED, "the client cancelled the call"};
    if (!outcome.error.empty())
      return {StatusCode::INTERNAL, "model '" + name + "': " + outcome.error};

    resp->set_model_name(name);
    resp->set_model_version(kModelVersion);
    resp->set_id(req->id());
    for (size_t i : order) {
      const at::Tensor& t = outcome.outputs[i];
      auto* out = resp->add_outputs();
      out->set_name(output_names[i]);
      out->set_datatype("FP32");
      for (int64_t d : t.sizes()) out->add_shape(d);
      resp->add_raw_output_contents(reinterpret_cast<const char*>(t.data_ptr<float>()),
                                    static_cast<size_t>(t.numel()) * sizeof(float));
    }
    auto* params = resp->mutable_parameters();
    set_int(params, kParamQueueUs, outcome.queue_us);
    set_int(params, kParamComputeUs, outcome.compute_us);
    set_int(params, kParamBatch, outcome.batch);
    set_int(params, kParamServerUs, micros(Clock::now() - received));
    return grpc::Status::OK;
  }
};

namespace {

std::vector<int64_t> dims_of(const ir::Graph& g, const std::string& value,
                             const std::string& path) {
  const auto& shape = g.value(value).shape;
  if (!shape)
    throw Error(path + ": the shape of '" + value + "' is unknown; graft serve needs its rank");
  std::vector<int64_t> dims;
  for (const auto& d : *shape) dims.push_back(d.known() ? d.value : -1);
  if (!dims.empty()) dims[0] = -1;  // the batch
  return dims;
}

}  // namespace

Server::Server(const std::string& model_path, ServerOptions options) {
  route_grpc_logs();
  if (options.max_batch < 1) throw Error("--max-batch must be at least 1");
  if (options.max_queue < 1) throw Error("--max-queue must be at least 1");
  if (options.max_delay_us < 0) throw Error("--max-delay-ms must not be negative");
  if (options.tls_cert.empty() != options.tls_key.empty())
    throw Error("give both --tls-cert and --tls-key, or neither");
  ir::Graph g = keras::load_model(model_path, {}, options.keras);
  with_context(model_path, [&] { ir::infer_shapes(g); });
  if (g.inputs.size() != 1) {
    throw Error(model_path + ": graft serve serves models with one input; this one has " +
                std::to_string(g.inputs.size()));
  }
  const std::string input = g.inputs[0];
  if (g.value(input).dtype != ir::kFloat) {
    throw Error(model_path + ": input '" + input + "' is " + ir::dtype_name(g.value(input).dtype) +
                "; graft serve takes float32 inputs");
  }
  std::vector<int64_t> in_dims = dims_of(g, input, model_path);
  if (in_dims.empty())
    throw Error(model_path + ": input '" + input +
                "' is a scalar; graft serve needs a batch dimension");
  std::vector<std::string> outputs = g.outputs;
  std::vector<std::vector<int64_t>> out_dims;
  for (const auto& o : outputs) out_dims.push_back(dims_of(g, o, model_path));
  std::map<std::string, std::string> props;
  for (const char* key : {ir::kMetaLabels, ir::kMetaRole, "graft.split"}) {
    if (auto v = g.get_metadata(key)) props[key] = *v;
  }
  props["max_batch"] = std::to_string(options.max_batch);
  std::string name = options.model_name.empty() ? std::filesystem::path(model_path).stem().string()
                                                : options.model_name;
  exec::SessionOptions so;
  so.optimize = true;
  exec::Session session(std::move(g), so, model_path);

  impl_ = std::make_unique<Impl>(std::move(options), std::move(session));
  Impl& s = *impl_;
  s.name = std::move(name);
  s.input_name = input;
  s.input_dims = std::move(in_dims);
  s.output_names = std::move(outputs);
  s.output_dims = std::move(out_dims);
  s.properties = std::move(props);

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!s.options.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({read_file(s.options.tls_key), read_file(s.options.tls_cert)});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder builder;
  // No SO_REUSEPORT: a second server on a taken port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(s.options.listen, creds, &s.bound_port);
  builder.RegisterService(&s);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(s.options.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(INT32_MAX);
  // Handler threads: one per queued request and in-flight batch, plus a few for metadata calls.
  grpc::ResourceQuota quota("graft-serve");
  quota.SetMaxThreads(
      static_cast<int>(std::min<int64_t>(s.options.max_queue + s.options.max_batch + 16, 4096)));
  builder.SetResourceQuota(quota);
  s.grpc_server = builder.BuildAndStart();
  if (!s.grpc_server || s.bound_port == 0) {
    throw Error("cannot listen on '" + s.options.listen + "' (address in use, or not HOST:PORT?)");
  }
  s.worker = std::thread([&s] { s.run_worker(); });
}

Server::~Server() {
  if (impl_) shutdown(std::chrono::seconds(5));
}

int Server::port() const { return impl_->bound_port; }
const std::string& Server::model_name() const { return impl_->name; }

void Server::shutdown(std::chrono::milliseconds grace) {
  Impl& s = *impl_;
  std::call_once(s.shutdown_once, [&] {
    // No new calls; in-flight ones finish (the batcher still runs) or are cancelled at the
    // deadline.
    s.grpc_server->Shutdown(std::chrono::system_clock::now() + grace);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.stopping = true;
    }
    s.cv.notify_all();
    s.worker.join();
    s.grpc_server->Wait();
  });
}

ServerStats Server::stats() const {
  const Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  return {s.n_requests.load(), s.n_errors.load(), s.n_full.load(),
          s.n_runs.load(),     s.n_images.load(), static_cast<int64_t>(s.queue.size())};
}

}  // namespace graft::serve
