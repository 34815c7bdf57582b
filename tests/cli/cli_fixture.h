// The fixture of the command-line tests: a scratch folder, graft run as a user runs it (exit
// code, stdout, stderr), and graft serve started in the background.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace graft::testing {

struct Result {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/graft_cli_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static std::string file(const std::string& name) { return dir_ + "/" + name; }

  static Result graft(const std::string& args) {
    const std::string cmd = std::string(GRAFT_BINARY) + " " + args + " >" + file("out") + " 2>" +
                            file("err") + " </dev/null";
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(file("out"));
    r.err = slurp(file("err"));
    return r;
  }

  static int lines(const std::string& s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
  }

  // Starts `graft serve MODEL --listen 127.0.0.1:0 ARGS` in the background; returns its port
  // ("" if it did not start listening within 30 s; the log is file(NAME.log)). stop_server ends it.
  static std::string start_server(const std::string& model, const std::string& args, const std::string& name = "serve") {
    const std::string log = file(name + ".log");
    const std::string start = "sh -c '" + std::string(GRAFT_BINARY) + " serve " + model + " --listen 127.0.0.1:0 " +
                              args + " >" + log + " 2>&1 & echo $! >" + file(name + ".pid") + "'";
    if (std::system(start.c_str()) != 0) return "";
    for (int i = 0; i < 600; ++i) {
      const std::string text = slurp(log);
      const size_t at = text.find("listening on 127.0.0.1:");
      if (at != std::string::npos) return text.substr(at + 23, text.find_first_not_of("0123456789", at + 23) - at - 23);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }
  static int stop_server(const std::string& name = "serve") {
    return std::system(("kill -TERM " + slurp(file(name + ".pid"))).c_str());
  }

  static inline std::string dir_;
};

}  // namespace graft::testing
