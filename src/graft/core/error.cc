#include "graft/core/error.h"

namespace graft {

Error Error::with_context(const std::string& context) const {
  return Error(context + ": " + what(), kind_);
}

}  // namespace graft
