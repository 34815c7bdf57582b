#include "graft/serve/grpc_log.h"

#include <grpc/support/log.h>

#include <mutex>
#include <string>

#include "graft/core/log.h"

namespace graft::serve {

void route_grpc_logs() {
  static std::once_flag once;
  std::call_once(once, [] {
    gpr_set_log_function([](gpr_log_func_args* args) {
      log::debug(std::string("grpc: ") + (args->message ? args->message : ""));
    });
  });
}

}  // namespace graft::serve
