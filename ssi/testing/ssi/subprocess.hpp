// Test helper: run a program, capture stdout/stderr and how it ended, with a
// hard time limit (a hang is killed and reported, never a stuck suite).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

extern char** environ;

namespace ssi::testing {

struct ProcessOutcome {
  int exit_code = -1;  // -1 if it did not exit normally
  int signal = 0;      // the terminating signal, if any
  bool timed_out = false;
  std::string out, err;
};

inline ProcessOutcome run_process(const std::string& program, const std::vector<std::string>& args,
                                  const std::vector<std::string>& extra_env = {},
                                  std::chrono::seconds limit = std::chrono::seconds(20)) {
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s(extra_env);
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  ProcessOutcome o;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return o;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return o;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  if (rc != 0) {
    ::close(fds[0].fd);
    ::close(fds[1].fd);
    o.err = "posix_spawn failed";
    return o;
  }
  int open_fds = 2;
  // Reads both pipes until they close or `until`.
  auto pump = [&](std::chrono::steady_clock::time_point until) {
    while (open_fds > 0 && std::chrono::steady_clock::now() < until) {
      if (::poll(fds, 2, 100) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        } else {
          (i == 0 ? o.out : o.err).append(buf, static_cast<std::size_t>(n));
        }
      }
    }
  };
  pump(std::chrono::steady_clock::now() + limit);
  if (open_fds > 0) {
    // Over time: SIGTERM first, so that a program that stops cleanly says
    // where it was (ssi prints each vCPU's rip and what it waited for);
    // SIGKILL if it is not gone within 15 s.
    o.timed_out = true;
    ::kill(pid, SIGTERM);
    pump(std::chrono::steady_clock::now() + std::chrono::seconds(15));
    if (open_fds > 0) ::kill(pid, SIGKILL);
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  return o;
}

}  // namespace ssi::testing
