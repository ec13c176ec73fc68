// HookRunner: runs the operator's hook programs (hooks.on_promote, hooks.on_demote) one at a
// time, in the order asked, each with a time limit, on a thread of its own so that a slow hook
// never stalls heartbeats. The outcome goes to a callback (on the runner's thread).
//
// A hook gets the environment it is given (MPF_NODE, MPF_ROLE, ...) on top of PATH; its output
// goes to the daemon's stderr (the journal). A hook that outlives its limit is killed with its
// process group and counted failed.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <mpf/core/clock.hpp>

namespace mpf::server {

struct HookResult {
  std::string name;     // "on_promote" | "on_demote"
  std::string program;  // what ran
  bool ok = false;
  std::string detail;  // "exit status 3", "killed after 30000 ms", "could not start: ..."
  double seconds = 0;
};

class HookRunner {
 public:
  explicit HookRunner(Duration timeout);
  ~HookRunner();  // waits for the running hook (at most its timeout), drops queued ones

  void run(std::string name, std::string program, std::map<std::string, std::string> env,
           std::function<void(HookResult)> done);

  // hooks.timeout changed (SIGHUP): applies to the hooks that start from now on.
  void set_timeout(Duration timeout);

  // Synchronous form, used by run() and by tests.
  static HookResult run_now(const std::string& name, const std::string& program,
                            const std::map<std::string, std::string>& env, Duration timeout);

 private:
  struct Job {
    std::string name, program;
    std::map<std::string, std::string> env;
    std::function<void(HookResult)> done;
  };
  void loop(std::stop_token stop);

  Duration timeout_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Job> jobs_;
  std::jthread thread_;
};

}  // namespace mpf::server
