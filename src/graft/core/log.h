// Logging to stderr (stdout is reserved for results). Levels: debug < info < warn < error.
#pragma once

#include <string>

namespace graft::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_level(Level level);
Level level();

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace graft::log
