// Nothing lost on a crash: graft killed with SIGKILL at random moments of the commands that
// write files (cut, stitch, split, train --checkpoint) leaves every output either as it was (absent
// or the previous complete file) or the new complete file, and a killed training resumes from
// its last checkpoint to the same weights as a run that was never interrupted.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "graft/core/file.h"
#include "graft/ir/onnx_io.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class CrashTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/graft_crash_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string file(const std::string& name) { return dir_ + "/" + name; }

  // Runs graft; with `kill_after`, SIGKILLs it then unless it has ended. Returns its exit code
  // (128 + signal when killed) and sets `seconds` to how long it ran.
  // With `armed`, the delay counts from the moment armed() first holds.
  static int graft(const std::vector<std::string>& args, std::optional<std::chrono::microseconds> kill_after = {},
                   double* seconds = nullptr, const std::function<bool()>& armed = {}) {
    const Clock::time_point start = Clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv{const_cast<char*>(GRAFT_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      if (!::freopen("/dev/null", "w", stdout) || !::freopen((dir_ + "/err").c_str(), "w", stderr)) ::_exit(126);
      ::execv(GRAFT_BINARY, argv.data());
      ::_exit(127);
    }
    int status = 0;
    std::optional<Clock::time_point> from;
    if (!armed) from = start;
    for (;;) {
      const pid_t done = ::waitpid(pid, &status, kill_after ? WNOHANG : 0);
      if (done == pid) break;
      if (!from && armed()) from = Clock::now();
      if (kill_after && from && Clock::now() - *from >= *kill_after) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (seconds) *seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  static std::string dir_;
};
std::string CrashTest::dir_;

// The models the commands work on: the bundled pair, small.
void make_models(const std::function<int(const std::vector<std::string>&)>& run, const std::string& dir) {
  ASSERT_EQ(run({"zoo", "mobilenet_v1", "--alpha", "0.25", "--input", "32", "--classes", "10", "--seed", "2", "-o",
                 dir + "/m.onnx"}),
            0);
  ASSERT_EQ(run({"zoo", "inception_resnet_v2", "--input", "75", "--width", "0.25", "--repeats", "1,1,1", "--classes",
                 "10", "-o", dir + "/s.onnx"}),
            0);
}

TEST_F(CrashTest, KilledWritesLeaveOldOrNewCompleteFiles) {
  make_models([](const std::vector<std::string>& a) { return graft(a); }, dir_);
  struct Command {
    std::vector<std::string> args;
    std::vector<std::string> outputs;
  };
  const std::vector<Command> commands = {
      {{"cut", file("m.onnx"), "--at", "conv_pad_6", "--head", file("head.onnx"), "--tail", file("tail.onnx")},
       {file("head.onnx"), file("tail.onnx")}},
      {{"stitch", "--head", file("m.onnx") + "@conv_pad_6", "--tail", file("s.onnx") + "@mixed_6a", "-o",
        file("hybrid.onnx")},
       {file("hybrid.onnx")}},
      {{"split", file("hybrid.onnx"), "--device", file("dev.onnx"), "--server", file("srv.onnx")},
       {file("dev.onnx"), file("srv.onnx")}},
  };
  std::mt19937 rng(19);
  for (const auto& c : commands) {
    double seconds = 0;
    ASSERT_EQ(graft(c.args, {}, &seconds), 0) << graft::read_file(file("err"));
    std::vector<std::string> complete;
    for (const auto& o : c.outputs) complete.push_back(graft::read_file(o));
    for (int i = 0; i < 16; ++i) {
      const bool fresh = i % 2 == 0;  // no previous file: absent or complete
      for (size_t k = 0; k < c.outputs.size(); ++k) {
        if (fresh) {
          fs::remove(c.outputs[k]);
        } else {
          graft::write_file_atomic(c.outputs[k], complete[k]);
        }
      }
      const auto delay = std::chrono::microseconds(
          std::uniform_int_distribution<int64_t>(0, static_cast<int64_t>(seconds * 1.1e6))(rng));
      graft(c.args, delay);
      for (size_t k = 0; k < c.outputs.size(); ++k) {
        if (fresh && !fs::exists(c.outputs[k])) continue;
        ASSERT_TRUE(fs::exists(c.outputs[k])) << c.outputs[k];
        EXPECT_EQ(graft::read_file(c.outputs[k]), complete[k])
            << c.args[0] << " killed after " << delay.count() << " us left " << c.outputs[k] << " incomplete";
      }
    }
    // Killed runs may leave their temporary files (name.tmpPID.N), never anything else.
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.find(".tmp") != std::string::npos) fs::remove(e.path());
    }
  }
}

TEST_F(CrashTest, KilledTrainingResumesFromItsLastCheckpoint) {
  make_models([](const std::vector<std::string>& a) { return graft(a); }, dir_);
  ASSERT_EQ(graft({"stitch", "--head", file("m.onnx") + "@conv_pad_6", "--tail", file("s.onnx") + "@mixed_6a", "-o",
                   file("hybrid.onnx")}),
            0);
  const auto train = [&](const std::string& out, const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"train", file("hybrid.onnx"), "-o", out, "--limit", "384", "--epochs", "4",
                                  "--batch", "64", "--seed", "3", "--no-progress"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  double seconds = 0;
  ASSERT_EQ(graft(train(file("whole.onnx"), {}), {}, &seconds), 0) << graft::read_file(file("err"));
  const graft::ir::Graph whole = graft::ir::load(file("whole.onnx"));
  std::mt19937 rng(21);
  int resumed = 0;
  for (int i = 0; i < 6; ++i) {
    for (const char* f : {"ck.onnx", "ck.onnx.state", "ck.onnx.state.prev", "resumed.onnx"}) fs::remove(file(f));
    // At a random moment after the first checkpoint (up to the run's length after it: some kills
    // land while a later checkpoint is being written, some after the run ended).
    const auto delay = std::chrono::microseconds(
        std::uniform_int_distribution<int64_t>(0, static_cast<int64_t>(seconds * 0.8e6))(rng));
    const int code = graft(train(file("resumed.onnx"), {"--checkpoint", file("ck.onnx")}), delay, nullptr,
                           [&] { return fs::exists(file("ck.onnx")); });
    if (code == 0) continue;  // it ended first
    ASSERT_EQ(code, 128 + SIGKILL) << graft::read_file(file("err"));
    ++resumed;
    ASSERT_EQ(graft(train(file("resumed.onnx"), {"--checkpoint", file("ck.onnx"), "--resume", file("ck.onnx")})), 0)
        << "killed " << delay.count() << " us after the first checkpoint: " << graft::read_file(file("err"));
    const graft::ir::Graph g = graft::ir::load(file("resumed.onnx"));
    for (const auto& [name, t] : whole.initializers) {
      EXPECT_TRUE(at::equal(t, g.initializers.at(name))) << name << " after a kill at " << delay.count() << " us";
    }
  }
  EXPECT_GE(resumed, 2) << "too few kills landed after a checkpoint to test resuming";
}

// graft reads HDF5 in a child process (libhdf5 can crash or spin on corrupt files); killing
// graft while the child spins on such a file (found by fuzzing) takes the child with it.
TEST_F(CrashTest, KillingGraftTakesItsHdf5ReaderWithIt) {
  const std::string hang = file("hang.h5");
  fs::copy_file(std::string(GRAFT_TEST_DATA) + "/../fuzz/keras_hdf5/hang-vlen-attribute-global-heap.h5", hang);
  const auto readers = [&] {
    int n = 0;
    for (const auto& p : fs::directory_iterator("/proc")) {
      std::ifstream in(p.path() / "cmdline");  // (/proc files have no size: read them as streams)
      const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      n += cmdline.find(hang) != std::string::npos;
    }
    return n;
  };
  // Killed once the reader is running (graft and its child both name the file).
  EXPECT_EQ(graft({"summary", hang}, std::chrono::milliseconds(300), nullptr, [&] { return readers() >= 2; }),
            128 + SIGKILL);
  int left = readers();
  for (int i = 0; i < 40 && left > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    left = readers();
  }
  EXPECT_EQ(left, 0) << "the HDF5 reader outlived graft";
}

}  // namespace
