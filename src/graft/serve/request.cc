#include "graft/serve/request.h"

#include <algorithm>

#include "graft/core/error.h"
#include "graft/serve/codec.h"

namespace graft::serve {

grpc::Status decode_request(const inference::ModelInferRequest& req, const RequestSignature& sig,
                            DecodedRequest* out) {
  using grpc::StatusCode;
  if (req.inputs_size() != 1) {
    return {StatusCode::INVALID_ARGUMENT, "model '" + sig.model + "' takes one input, '" + sig.input +
                                              "'; the request has " +
                                              std::to_string(req.inputs_size())};
  }
  const auto& in = req.inputs(0);
  if (in.name() != sig.input) {
    return {StatusCode::INVALID_ARGUMENT, "model '" + sig.model + "' has no input '" + in.name() +
                                              "'; its input is '" + sig.input + "'"};
  }
  std::vector<int64_t> shape(in.shape().begin(), in.shape().end());
  if (shape.size() != sig.input_dims.size()) {
    return {StatusCode::INVALID_ARGUMENT,
            "input '" + sig.input + "' has rank " + std::to_string(sig.input_dims.size()) +
                "; the request's shape has rank " + std::to_string(shape.size())};
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0 || (i == 0 && shape[i] == 0) ||
        (sig.input_dims[i] >= 0 && shape[i] != sig.input_dims[i])) {
      return {StatusCode::INVALID_ARGUMENT,
              "input '" + sig.input + "' dimension " + std::to_string(i) + " is " +
                  std::to_string(sig.input_dims[i]) + " (-1: any positive size); the request says " +
                  std::to_string(shape[i])};
    }
  }
  if (shape.empty()) {
    return {StatusCode::INVALID_ARGUMENT, "input '" + sig.input + "' needs a shape"};
  }
  if (shape[0] > sig.max_batch) {
    return {StatusCode::INVALID_ARGUMENT, "the request's batch of " + std::to_string(shape[0]) +
                                              " is larger than the server's --max-batch " +
                                              std::to_string(sig.max_batch)};
  }
  if (datatype_size(in.datatype()) == 0) {
    return {StatusCode::INVALID_ARGUMENT,
            "input '" + sig.input + "' datatype '" + in.datatype() +
                "' is not accepted: send FP32 (or graft's FP16/INT8 codecs)"};
  }
  // The outputs to answer with, as indices into sig.outputs: the ones asked for, else all.
  std::vector<size_t> order;
  for (const auto& o : req.outputs()) {
    const auto it = std::find(sig.outputs.begin(), sig.outputs.end(), o.name());
    if (it == sig.outputs.end()) {
      return {StatusCode::INVALID_ARGUMENT,
              "model '" + sig.model + "' has no output '" + o.name() + "'"};
    }
    order.push_back(static_cast<size_t>(it - sig.outputs.begin()));
  }
  if (order.empty()) {
    for (size_t i = 0; i < sig.outputs.size(); ++i) order.push_back(i);
  }
  // The input's bytes: raw contents, or FP32 typed contents from a client that sends lists.
  try {
    const auto& params = in.parameters();
    auto string_param = [&](const char* key) -> std::string {
      const auto it = params.find(key);
      return it == params.end() ? "" : it->second.string_param();
    };
    const auto zstd_it = params.find(kParamZstd);
    const bool zstd = zstd_it != params.end() && zstd_it->second.bool_param();
    std::vector<float> scale;
    std::vector<int32_t> zero_point;
    if (in.datatype() == "INT8") {
      scale = split_floats(string_param(kParamScale), kParamScale);
      zero_point = split_ints(string_param(kParamZeroPoint), kParamZeroPoint);
    }
    const auto& typed = in.contents();
    const bool has_typed = typed.bool_contents_size() + typed.int_contents_size() + typed.int64_contents_size() +
                               typed.uint_contents_size() + typed.uint64_contents_size() +
                               typed.fp32_contents_size() + typed.fp64_contents_size() +
                               typed.bytes_contents_size() >
                           0;
    if (req.raw_input_contents_size() > 0 && has_typed) {
      return {StatusCode::INVALID_ARGUMENT,
              "input '" + sig.input +
                  "' has typed contents and the request has raw_input_contents: the protocol "
                  "allows one or the other, not both"};
    }
    if (req.raw_input_contents_size() == 1) {
      out->values = decode(in.datatype(), shape, req.raw_input_contents(0), zstd, scale, zero_point);
    } else if (req.raw_input_contents_size() == 0 && in.datatype() == "FP32") {
      const auto& list = in.contents().fp32_contents();
      std::string bytes(reinterpret_cast<const char*>(list.data()),
                        static_cast<size_t>(list.size()) * sizeof(float));
      out->values = decode("FP32", shape, bytes, false, {}, {});
    } else {
      return {
          StatusCode::INVALID_ARGUMENT,
          "send the input as one raw_input_contents entry (or FP32 contents); the request has " +
              std::to_string(req.raw_input_contents_size()) + " raw entries"};
    }
  } catch (const Error& e) {
    return {StatusCode::INVALID_ARGUMENT, "input '" + sig.input + "': " + e.what()};
  }
  out->shape = std::move(shape);
  out->order = std::move(order);
  return grpc::Status::OK;
}

}  // namespace graft::serve
