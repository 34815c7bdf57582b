// graft::serve::TokenBucket — a bandwidth limit for a client (graft infer --limit-rate), to
// measure a split deployment as if over a slower network than the one it runs on.
//
// Tokens are bytes. They accrue at `rate` bytes per second up to `burst`; taking n bytes
// removes n tokens, going into debt if there are fewer, and the taker waits until the debt is
// paid. With burst 0 every message waits its own size / rate, one after another, as on a link
// that carries nothing else: concurrent takers queue behind each other's debt.
#pragma once

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

namespace graft::serve {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double bytes_per_s, double burst_bytes)
      : rate_(bytes_per_s), burst_(std::max(burst_bytes, 0.0)), tokens_(burst_), last_(Clock::now()) {}

  // Takes `bytes` at time `now`; returns how long the taker must wait (seconds, >= 0).
  double take(double bytes, Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    if (elapsed > 0) {
      tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
      last_ = now;
    }
    tokens_ -= bytes;
    return tokens_ >= 0 ? 0.0 : -tokens_ / rate_;
  }

  // Takes `bytes` now and sleeps as long as that asks.
  void acquire(double bytes) {
    const double wait = take(bytes, Clock::now());
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }

  double rate() const { return rate_; }

 private:
  std::mutex mu_;
  double rate_, burst_, tokens_;
  Clock::time_point last_;
};

}  // namespace graft::serve
