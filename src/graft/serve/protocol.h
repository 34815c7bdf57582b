// Names graft's server and client agree on, beyond the Open Inference Protocol itself.
#pragma once

namespace graft::serve {

// The one model version graft serves.
inline constexpr const char* kModelVersion = "1";
// Listed in ServerMetadata.extensions by `graft serve`: it decodes FP16, INT8 (graft.scale,
// graft.zero_point) and zstd-compressed (graft.zstd) inputs; see codec.h. A server without it
// (Triton, KServe) is sent plain FP32.
inline constexpr const char* kExtensionCodecs = "graft_codecs";

// Response parameters (int64) with the server's timings of this request.
inline constexpr const char* kParamQueueUs = "graft.queue_us";      // enqueued -> its batch started
inline constexpr const char* kParamComputeUs = "graft.compute_us";  // the model run it was part of
inline constexpr const char* kParamBatch = "graft.batch";           // that run's batch size
inline constexpr const char* kParamServerUs =
    "graft.server_us";  // receipt -> reply, in the handler

}  // namespace graft::serve
