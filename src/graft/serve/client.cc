#include "graft/serve/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/serve/grpc_log.h"
#include "graft/serve/inference.grpc.pb.h"
#include "graft/serve/protocol.h"
#include "graft/serve/rate.h"

namespace graft::serve {
namespace {

namespace pb = ::inference;

const char* status_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

int64_t int_param(const google::protobuf::Map<std::string, pb::InferParameter>& params,
                  const char* key) {
  const auto it = params.find(key);
  return it == params.end() ? 0 : it->second.int64_param();
}

TensorInfo tensor_info(const pb::ModelMetadataResponse::TensorMetadata& t) {
  return {t.name(), t.datatype(), std::vector<int64_t>(t.shape().begin(), t.shape().end())};
}

}  // namespace

bool ServerInfo::has_extension(const std::string& e) const {
  return std::find(extensions.begin(), extensions.end(), e) != extensions.end();
}

struct Client::Impl {
  ClientOptions options;
  std::unique_ptr<pb::GRPCInferenceService::Stub> stub;
  std::unique_ptr<TokenBucket> up, down;  // with options.limit_bytes_per_s

  void prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(options.timeout_s * 1e6)));
    if (!options.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options.token);
  }

  void check(const grpc::Status& s, const char* method) const {
    if (s.ok()) return;
    std::string message = options.target + ": " + method + ": " + status_name(s.error_code()) +
                          ": " + s.error_message();
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
      message += " (is the server running, and is the address right?)";
    throw Error(message);
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  route_grpc_logs();
  impl_->options = std::move(options);
  const ClientOptions& o = impl_->options;
  if (o.limit_bytes_per_s < 0) throw Error("a client's bandwidth limit must not be negative");
  if (o.limit_bytes_per_s > 0) {
    impl_->up = std::make_unique<TokenBucket>(o.limit_bytes_per_s, 0.0);
    impl_->down = std::make_unique<TokenBucket>(o.limit_bytes_per_s, 0.0);
  }
  const size_t colon = o.target.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == o.target.size()) {
    throw Error("--server '" + o.target + "' is not HOST:PORT");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(o.max_message_bytes, INT32_MAX)));
  args.SetMaxSendMessageSize(static_cast<int>(std::min<int64_t>(o.max_message_bytes, INT32_MAX)));
  if (o.tls || !o.tls_ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!o.tls_ca.empty()) ssl.pem_root_certs = read_file(o.tls_ca);
    creds = grpc::SslCredentials(ssl);
    if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  impl_->stub = pb::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(o.target, creds, args));
}

Client::~Client() = default;

bool Client::live() {
  grpc::ClientContext ctx;
  impl_->prepare(&ctx);
  pb::ServerLiveRequest req;
  pb::ServerLiveResponse resp;
  impl_->check(impl_->stub->ServerLive(&ctx, req, &resp), "ServerLive");
  return resp.live();
}

ServerInfo Client::server_metadata() {
  grpc::ClientContext ctx;
  impl_->prepare(&ctx);
  pb::ServerMetadataRequest req;
  pb::ServerMetadataResponse resp;
  impl_->check(impl_->stub->ServerMetadata(&ctx, req, &resp), "ServerMetadata");
  return {resp.name(), resp.version(),
          std::vector<std::string>(resp.extensions().begin(), resp.extensions().end())};
}

ModelInfo Client::model_metadata(const std::string& model, const std::string& version) {
  grpc::ClientContext ctx;
  impl_->prepare(&ctx);
  pb::ModelMetadataRequest req;
  req.set_name(model);
  req.set_version(version);
  pb::ModelMetadataResponse resp;
  impl_->check(impl_->stub->ModelMetadata(&ctx, req, &resp), "ModelMetadata");
  ModelInfo m;
  m.name = resp.name();
  m.platform = resp.platform();
  m.versions.assign(resp.versions().begin(), resp.versions().end());
  for (const auto& t : resp.inputs()) m.inputs.push_back(tensor_info(t));
  for (const auto& t : resp.outputs()) m.outputs.push_back(tensor_info(t));
  for (const auto& [k, v] : resp.properties()) m.properties[k] = v;
  return m;
}

InferResult Client::infer(const std::string& model, const std::string& input_name,
                          const float* data, const std::vector<int64_t>& shape, Codec codec,
                          bool zstd) {
  return infer(model, input_name, shape, encode(data, shape, codec, zstd));
}

InferResult Client::infer(const std::string& model, const std::string& input_name,
                          const std::vector<int64_t>& shape, Encoded e) {
  pb::ModelInferRequest req;
  req.set_model_name(model);
  auto* in = req.add_inputs();
  in->set_name(input_name);
  for (int64_t d : shape) in->add_shape(d);
  in->set_datatype(e.datatype);
  if (e.datatype == "INT8") {
    (*in->mutable_parameters())[kParamScale].set_string_param(join_floats(e.scale));
    (*in->mutable_parameters())[kParamZeroPoint].set_string_param(join_ints(e.zero_point));
  }
  if (e.zstd) (*in->mutable_parameters())[kParamZstd].set_bool_param(true);
  InferResult r;
  r.payload_bytes = e.bytes.size();
  req.add_raw_input_contents(std::move(e.bytes));
  r.request_bytes = req.ByteSizeLong();

  if (impl_->up) impl_->up->acquire(static_cast<double>(r.request_bytes));
  grpc::ClientContext ctx;
  impl_->prepare(&ctx);
  pb::ModelInferResponse resp;
  impl_->check(impl_->stub->ModelInfer(&ctx, req, &resp), "ModelInfer");
  if (impl_->down) impl_->down->acquire(static_cast<double>(resp.ByteSizeLong()));

  const bool raw = resp.raw_output_contents_size() > 0;
  if (raw && resp.raw_output_contents_size() != resp.outputs_size()) {
    throw Error(impl_->options.target + ": ModelInfer answered " +
                std::to_string(resp.outputs_size()) + " outputs but " +
                std::to_string(resp.raw_output_contents_size()) + " raw contents");
  }
  for (int i = 0; i < resp.outputs_size(); ++i) {
    const auto& t = resp.outputs(i);
    OutputTensor o;
    o.name = t.name();
    o.shape.assign(t.shape().begin(), t.shape().end());
    const std::string where = impl_->options.target + ": output '" + t.name() + "': ";
    if (t.datatype() != "FP32")
      throw Error(where + "datatype " + t.datatype() + "; graft infer reads FP32 outputs");
    const int64_t count = with_context(impl_->options.target + ": output '" + t.name() + "'",
                                       [&] { return element_count(o.shape); });
    if (raw) {
      const std::string& bytes = resp.raw_output_contents(i);
      if (bytes.size() != static_cast<size_t>(count) * sizeof(float)) {
        throw Error(where + std::to_string(bytes.size()) + " bytes for " + std::to_string(count) +
                    " floats");
      }
      o.data.resize(static_cast<size_t>(count));
      if (!bytes.empty()) std::memcpy(o.data.data(), bytes.data(), bytes.size());
    } else {
      const auto& list = t.contents().fp32_contents();
      if (list.size() != count)
        throw Error(where + std::to_string(list.size()) + " values for shape of " +
                    std::to_string(count));
      o.data.assign(list.begin(), list.end());
    }
    r.outputs.push_back(std::move(o));
  }
  r.queue_us = int_param(resp.parameters(), kParamQueueUs);
  r.compute_us = int_param(resp.parameters(), kParamComputeUs);
  r.batch = int_param(resp.parameters(), kParamBatch);
  r.server_us = int_param(resp.parameters(), kParamServerUs);
  return r;
}

}  // namespace graft::serve
