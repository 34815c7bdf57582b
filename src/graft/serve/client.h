// graft::serve::Client — calls an Open Inference Protocol (KServe v2) gRPC server: graft serve,
// Triton or KServe. One client holds one channel; infer() may be called from many threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/serve/codec.h"

namespace graft::serve {

struct ClientOptions {
  std::string target;           // HOST:PORT
  std::string token;            // sent as "authorization: Bearer TOKEN" when not empty
  bool tls = false;             // TLS, verifying the server against tls_ca (or the system roots)
  std::string tls_ca;           // PEM file of the CA (or self-signed certificate) to trust
  std::string tls_server_name;  // the name to verify, if not the target's host
  double timeout_s = 60;        // per call
  int64_t max_message_bytes = 64 << 20;
  // > 0: a bandwidth limit (bytes per second) on ModelInfer, each way: a request waits its
  // serialized size / limit before it is sent, and an answer its size / limit after it arrives
  // (a token bucket with no burst: rate.h).
  double limit_bytes_per_s = 0;
};

struct TensorInfo {
  std::string name, datatype;
  std::vector<int64_t> shape;  // -1: any size
};

struct ModelInfo {
  std::string name, platform;
  std::vector<std::string> versions;
  std::vector<TensorInfo> inputs, outputs;
  std::map<std::string, std::string> properties;
};

struct ServerInfo {
  std::string name, version;
  std::vector<std::string> extensions;
  bool has_extension(const std::string& e) const;
};

struct OutputTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct InferResult {
  std::vector<OutputTensor> outputs;
  size_t request_bytes = 0;  // the serialized request message
  size_t payload_bytes = 0;  // the input tensor's raw contents as sent
  // graft serve's own timings (0 from other servers): see protocol.h.
  int64_t queue_us = 0, compute_us = 0, batch = 0, server_us = 0;
};

class Client {
 public:
  // Connects lazily; the first call fails with a clear Error if the server is not there.
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool live();
  ServerInfo server_metadata();
  ModelInfo model_metadata(const std::string& model, const std::string& version = "");

  // Sends one input tensor (float32 data of `shape`) through `codec` (optionally zstd) and
  // returns every output as float32. Throws Error carrying the gRPC status and the server's
  // message, e.g. "HOST:PORT: ModelInfer: INVALID_ARGUMENT: …".
  InferResult infer(const std::string& model, const std::string& input_name, const float* data,
                    const std::vector<int64_t>& shape, Codec codec = Codec::kFp32,
                    bool zstd = false);
  // The same with the tensor already encoded (so a caller can time encoding on its own).
  InferResult infer(const std::string& model, const std::string& input_name,
                    const std::vector<int64_t>& shape, Encoded encoded);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft::serve
