// gRPC logs to stderr on its own (a failed bind, a refused TLS handshake); graft's promise of one
// line per error needs those lines routed into graft's log at debug level (-v shows them).
#pragma once

namespace graft::serve {

void route_grpc_logs();  // idempotent, thread-safe

}  // namespace graft::serve
