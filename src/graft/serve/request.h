// The Open Inference Protocol's ModelInferRequest checked against the model a server runs, and its
// input decoded: what `graft serve` does with a request before it queues it. Kept apart from the
// server (no model, no threads) so that it can be tested and fuzzed on its own.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <string>
#include <vector>

#include "graft/serve/inference.pb.h"

namespace graft::serve {

// What a request must agree with.
struct RequestSignature {
  std::string model;
  std::string input;
  std::vector<int64_t> input_dims;  // -1 where any positive size goes
  std::vector<std::string> outputs;
  int64_t max_batch = 0;
};

struct DecodedRequest {
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::vector<size_t> order;  // the outputs to answer with, as indices into the signature's
};

// OK and `out` filled, or INVALID_ARGUMENT with a one-line message naming the field at fault.
// (The model's name and version are the caller's to check.)
grpc::Status decode_request(const inference::ModelInferRequest& req, const RequestSignature& sig,
                            DecodedRequest* out);

}  // namespace graft::serve
