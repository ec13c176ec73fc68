#include <cstring>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpf/server/hook_runner.hpp>

extern char** environ;

namespace mpf::server {

HookRunner::HookRunner(Duration timeout)
    : timeout_(timeout), thread_([this](std::stop_token st) { loop(st); }) {}

HookRunner::~HookRunner() {
  thread_.request_stop();
  cv_.notify_all();
}

void HookRunner::run(std::string name, std::string program, std::map<std::string, std::string> env,
                     std::function<void(HookResult)> done) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(Job{std::move(name), std::move(program), std::move(env), std::move(done)});
  }
  cv_.notify_all();
}

void HookRunner::set_timeout(Duration timeout) {
  std::lock_guard lock(mu_);
  timeout_ = timeout;
}

void HookRunner::loop(std::stop_token stop) {
  while (!stop.stop_requested()) {
    Job job;
    Duration timeout;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait(lock, stop, [&] { return !jobs_.empty(); })) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      timeout = timeout_;
    }
    auto result = run_now(job.name, job.program, job.env, timeout);
    if (job.done) job.done(std::move(result));
  }
}

HookResult HookRunner::run_now(const std::string& name, const std::string& program,
                               const std::map<std::string, std::string>& env, Duration timeout) {
  HookResult r;
  r.name = name;
  r.program = program;
  const auto start = std::chrono::steady_clock::now();
  if (access(program.c_str(), X_OK) != 0) {
    r.detail = "\"" + program + "\" is not an executable file: " + std::strerror(errno);
    return r;
  }
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "MPF_", 4) != 0) env_text.emplace_back(*e);
  }
  for (const auto& [k, v] : env) env_text.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = program;
  char* argv[] = {arg0.data(), nullptr};

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a timeout kills its children too
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, program.c_str(), nullptr, &attr, argv, envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    r.detail = "could not start \"" + program + "\": " + std::strerror(rc);
    return r;
  }
  const auto deadline = start + timeout;
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      r.detail = std::string("could not wait for the hook: ") + std::strerror(errno);
      return r;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.detail =
          "killed after " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
          " ms";
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status)) {
    r.ok = WEXITSTATUS(status) == 0;
    r.detail = "exit status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    r.detail = "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return r;
}

}  // namespace mpf::server
