#include "graft/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace graft::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mutex;

void emit(Level at, const char* tag, const std::string& message) {
  if (at < g_level.load()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "graft: %s%s\n", tag, message.c_str());
}

}  // namespace

void set_level(Level level) { g_level.store(level); }
Level level() { return g_level.load(); }

void debug(const std::string& message) { emit(Level::kDebug, "debug: ", message); }
void info(const std::string& message) { emit(Level::kInfo, "", message); }
void warn(const std::string& message) { emit(Level::kWarn, "warning: ", message); }
void error(const std::string& message) { emit(Level::kError, "error: ", message); }

}  // namespace graft::log
