// Runs a command line (through the shell) and collects its exit code and output: how the tests
// run the CLI and the daemon as an operator would.
#pragma once

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mpf::test {

struct Run {
  int rc;
  std::string output;  // stdout and stderr, interleaved
};

struct RunSplit {
  int rc;
  std::string out;  // stdout
  std::string err;  // stderr
};

namespace detail {
inline int read_all(const std::string& command, std::string& into) {
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) into.append(buf.data(), n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace detail

inline Run run(const std::string& command) {
  Run r{-1, ""};
  r.rc = detail::read_all(command + " 2>&1", r.output);
  return r;
}

inline RunSplit run_split(const std::string& command) {
  static std::atomic<int> n{0};
  const std::string err_file =
      "/tmp/mpft_stderr_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
  RunSplit r{-1, "", ""};
  r.rc = detail::read_all(command + " 2>" + err_file, r.out);
  std::ifstream in(err_file);
  r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::remove(err_file.c_str());
  return r;
}

}  // namespace mpf::test
