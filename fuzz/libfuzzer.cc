// One libFuzzer binary per target (GRAFT_FUZZ_TARGET names it); built with -DGRAFT_FUZZ=ON by
// scripts/fuzz.sh.
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fuzz/targets.h"

namespace {
const graft::fuzz::Target* target = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  target = graft::fuzz::find_target(GRAFT_FUZZ_TARGET);
  if (target == nullptr) {
    std::fprintf(stderr, "no fuzz target '%s'\n", GRAFT_FUZZ_TARGET);
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  target->run(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
