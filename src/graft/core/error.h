// graft::Error — the one exception type product code throws for bad input or failed operations.
//
// A message names the file, node or tensor at fault and, where possible, the fix. As an error
// travels up, callers prepend context ("loading m.onnx: node 'conv1' (Conv): ...") with
// with_context(), so the final one-line message reads from the outside in.
#pragma once

#include <stdexcept>
#include <string>

namespace graft {

enum class ErrorKind {
  kBadInput,  // the user's file, argument or request is wrong: CLI exit code 2
  kInternal,  // graft itself failed: CLI exit code 1
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ErrorKind kind = ErrorKind::kBadInput)
      : std::runtime_error(std::move(message)), kind_(kind) {}

  ErrorKind kind() const { return kind_; }

  // A copy of this error with "context: " in front of the message.
  Error with_context(const std::string& context) const;

 private:
  ErrorKind kind_;
};

// Runs fn(); a graft::Error escaping it gets `context` prepended, any other std::exception is
// turned into a graft::Error of kind kInternal with the context.
template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw e.with_context(context);
  } catch (const std::bad_alloc&) {
    throw Error(context + ": out of memory", ErrorKind::kInternal);
  } catch (const std::exception& e) {
    throw Error(context + ": " + e.what(), ErrorKind::kInternal);
  }
}

}  // namespace graft
