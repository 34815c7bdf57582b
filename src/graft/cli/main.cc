// graft — cut pretrained CNNs at any layer, join them through a trainable adapter, run them.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <malloc.h>

#include <cstdio>
#include <limits>
#include <exception>
#include <string>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/log.h"
#include "graft/core/version.h"

namespace {

// Keep the one-line-error promise even for messages that carry newlines (protobuf, ONNX).
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}


// glibc gives allocations above 32 MB straight back to the kernel when they are freed, so
// every training step (activations of ~100 MB at batch 64) and every oneDNN scratchpad faulted
// in and zeroed its pages again: ~45 % of adapter-training time on this project's VMs. Heap
// memory only, never trimmed: freed blocks are reused by the next step. The price is a higher
// peak RSS (fragmentation; ~2x in the training benchmark, docs/PERFORMANCE.md).
void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"graft: cut CNNs at any layer, stitch them with a trainable adapter, run them.\n"
               "Models are ONNX or Keras files; layers are referenced as in `graft summary`."};
  app.set_version_flag("--version", std::string("graft ") + graft::kVersion);
  app.require_subcommand(1);
  bool verbose = false, quiet = false;
  int threads = 0;
  app.add_option("--threads", threads, "Intra-op threads (default: all cores)")
      ->check(CLI::PositiveNumber);
  app.add_flag("-v,--verbose", verbose, "More log output on stderr");
  app.add_flag("-q,--quiet", quiet, "Only errors on stderr");
  graft::cli::add_keras_options(app);
  app.fallthrough();
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "graft: error: " + one_line(e.what()) + " (see --help)\n";
  });

  std::vector<graft::cli::Command> commands{graft::cli::add_summary_command(app),
                                            graft::cli::add_zoo_command(app),
                                            graft::cli::add_run_command(app),
                                            graft::cli::add_cuts_command(app),
                                            graft::cli::add_cut_command(app),
                                            graft::cli::add_design_command(app),
                                            graft::cli::add_stitch_command(app),
                                            graft::cli::add_eval_command(app),
                                            graft::cli::add_train_command(app),
                                            graft::cli::add_demo_command(app),
                                            graft::cli::add_bench_command(app),
                                            graft::cli::add_split_command(app),
                                            graft::cli::add_serve_command(app),
                                            graft::cli::add_infer_command(app),
                                            graft::cli::add_convert_command(app),
                                            graft::cli::add_profile_command(app),
                                            graft::cli::add_plan_command(app),
                                            graft::cli::add_search_command(app),
                                            graft::cli::add_report_command(app)};
  keep_freed_memory();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (threads > 0) at::set_num_threads(threads);
  graft::log::set_level(verbose ? graft::log::Level::kDebug
                                : quiet ? graft::log::Level::kError : graft::log::Level::kInfo);
  for (const auto& c : commands) {
    if (!c.app->parsed()) continue;
    try {
      c.run();
      return 0;
    } catch (const graft::Error& e) {
      std::fprintf(stderr, "graft: error: %s\n", one_line(e.what()).c_str());
      return e.kind() == graft::ErrorKind::kBadInput ? 2 : 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "graft: error: out of memory\n");
      return 1;
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "graft: internal error: %s\n", one_line(e.what_without_backtrace()).c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "graft: internal error: %s\n", one_line(e.what()).c_str());
      return 1;
    }
  }
  return 0;
}
