// graft::serve::Server — serves one ONNX model over the Open Inference Protocol (KServe v2)
// gRPC API: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer.
//
// Requests go through a dynamic batcher: one worker takes the first queued request, waits up to
// max_delay_us for more (or until max_batch images are queued), runs them as one batch and
// answers each with its own rows; a request that finds the server idle (and max_delay_us 0)
// runs on its own handler thread instead, sparing two thread hand-offs. The queue is bounded
// (RESOURCE_EXHAUSTED when full), messages are size-limited (RESOURCE_EXHAUSTED from gRPC), a
// bearer token is checked on every call but the two health probes (UNAUTHENTICATED), and shutdown()
// stops taking calls, finishes the ones in flight, then stops the worker.
//
// Inputs may arrive as FP32, FP16 or INT8 (with graft's codec parameters, see codec.h), raw or
// zstd-compressed; outputs go back as FP32 raw_output_contents. Each response carries graft's
// timing parameters: graft.queue_us, graft.compute_us (the model run it was part of),
// graft.batch (that run's batch) and graft.server_us (receipt to reply, inside the handler).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "graft/keras/keras.h"

namespace graft::serve {

struct ServerOptions {
  std::string listen = "127.0.0.1:8001";  // host:port; port 0 picks a free one (see port())
  std::string model_name;                 // default: the model file's stem
  std::string token;                      // bearer token; empty: no authentication
  std::string tls_cert, tls_key;          // PEM files; both or neither
  keras::ImportOptions keras;             // for a Keras model file
  int64_t max_batch = 32;                 // images per model run
  int64_t max_delay_us = 0;               // how long the first request waits for company
  int64_t max_queue = 128;                // requests waiting; more get RESOURCE_EXHAUSTED
  int64_t max_message_bytes = 64 << 20;   // larger requests get RESOURCE_EXHAUSTED
};

// What the server has done so far (for logs and the shutdown summary).
struct ServerStats {
  int64_t requests = 0, errors = 0, rejected_full = 0, runs = 0, images = 0;
  int64_t queued = 0;  // requests waiting for the batcher now
};

class Server {
 public:
  // Loads the model (one float input whose first dimension is the batch), compiles it and
  // starts listening. Throws Error naming the file, address or option at fault.
  Server(const std::string& model_path, ServerOptions options);
  ~Server();  // shuts down (a 5 s grace) if shutdown() was not called
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  const std::string& model_name() const;
  // Stops taking calls, lets in-flight calls finish for up to `grace` (then cancels them), and
  // stops the batcher. Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(30));
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft::serve
