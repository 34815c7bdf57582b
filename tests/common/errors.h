// Test helper: the message of the graft::Error that `fn` throws ("" if it throws none).
#pragma once

#include <functional>
#include <string>

#include "graft/core/error.h"

namespace graft::testing {

inline std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace graft::testing
