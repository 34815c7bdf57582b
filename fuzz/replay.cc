// Replays saved fuzz inputs through their targets (any build, no libFuzzer needed):
//   graft_fuzz_replay DIR...     every file DIR/<target>/<file> through <target>
//   graft_fuzz_replay --seeds OUT  writes the targets' code-made seeds to OUT/<target>/
// An input that makes a target throw anything but graft::Error fails the run (a crash fails it
// by itself); CTest runs it over tests/fuzz/, where every finding is kept.
#include <ATen/Parallel.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz/targets.h"
#include "graft/core/file.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  at::set_num_threads(1);
  if (argc == 3 && std::string(argv[1]) == "--seeds") {
    for (const auto& t : graft::fuzz::targets()) {
      const fs::path dir = fs::path(argv[2]) / t.name;
      fs::create_directories(dir);
      int i = 0;
      for (const std::string& s : t.seeds()) {
        std::ofstream(dir / ("seed-" + std::to_string(i++)), std::ios::binary)
            .write(s.data(), static_cast<std::streamsize>(s.size()));
      }
    }
    return 0;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: graft_fuzz_replay DIR... | --seeds OUT\n");
    return 2;
  }
  int inputs = 0, failures = 0;
  for (int a = 1; a < argc; ++a) {
    if (!fs::is_directory(argv[a])) {
      std::fprintf(stderr, "graft_fuzz_replay: %s is not a directory\n", argv[a]);
      return 2;
    }
    for (const auto& sub : fs::directory_iterator(argv[a])) {
      if (!sub.is_directory()) continue;
      const std::string name = sub.path().filename().string();
      const graft::fuzz::Target* t = graft::fuzz::find_target(name);
      if (t == nullptr) {
        std::fprintf(stderr, "graft_fuzz_replay: %s: no fuzz target '%s'\n", sub.path().c_str(), name.c_str());
        return 2;
      }
      for (const auto& f : fs::directory_iterator(sub.path())) {
        if (!f.is_regular_file() || f.path().filename().string().rfind('.', 0) == 0) continue;
        ++inputs;
        try {
          t->run(graft::read_file(f.path().string()));
        } catch (const std::exception& e) {
          ++failures;
          std::fprintf(stderr, "FAIL %s: %s\n", f.path().c_str(), e.what());
        }
      }
    }
  }
  std::printf("%d inputs replayed, %d failed\n", inputs, failures);
  return failures == 0 ? 0 : 1;
}
