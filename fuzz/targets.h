// graft's fuzz targets: every parser of untrusted bytes, each a function of one input. An input
// is handled when the parser accepts it or refuses it with graft::Error; anything else (another
// exception, a crash, a sanitizer report, a hang) is a finding. The same functions run under
// libFuzzer (fuzz/libfuzzer.cc, scripts/fuzz.sh) and replay saved inputs in CTest
// (fuzz/replay.cc over tests/fuzz/).
#pragma once

#include <string>
#include <vector>

namespace graft::fuzz {

struct Target {
  const char* name;
  void (*run)(const std::string& bytes);
  // Inputs to start from beyond the test data files scripts/fuzz.sh copies (made by code:
  // valid requests, codec frames, specs, layer references, small NPY/IDX/PNG files).
  std::vector<std::string> (*seeds)();
};

const std::vector<Target>& targets();
const Target* find_target(const std::string& name);

}  // namespace graft::fuzz
