// An `ssi demo` run in the background that a test can attack: its node
// processes, every socket they and the coordinator listen on (found in
// /proc), stdout/stderr captured in files, bounded waits.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ssi::adversarial {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Inodes of the sockets process `pid` holds.
inline std::set<unsigned long> socket_inodes(pid_t pid) {
  std::set<unsigned long> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (target.starts_with("socket:[")) out.insert(std::stoul(target.substr(8)));
  }
  return out;
}

// TCP ports `pid` listens on (IPv4).
inline std::vector<std::uint16_t> tcp_listen_ports(pid_t pid) {
  auto inodes = socket_inodes(pid);
  std::ifstream f("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(f, line);  // header
  std::vector<std::uint16_t> ports;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, tr, retr, uid, timeout;
    unsigned long inode = 0;
    in >> slot >> local >> remote >> state >> queues >> tr >> retr >> uid >> timeout >> inode;
    if (state == "0A" && inodes.count(inode))
      ports.push_back(static_cast<std::uint16_t>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16)));
  }
  return ports;
}

// shm listener names ("@ssi-shm-NAME" -> NAME) `pid` listens on.
inline std::vector<std::string> shm_listen_names(pid_t pid) {
  auto inodes = socket_inodes(pid);
  std::ifstream f("/proc/net/unix");
  std::string line;
  std::getline(f, line);
  std::vector<std::string> names;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string num, refs, proto, flags, type, st, path;
    unsigned long inode = 0;
    in >> num >> refs >> proto >> flags >> type >> st >> inode >> path;
    if (inodes.count(inode) && st == "01" && path.starts_with("@ssi-shm-")) names.push_back(path.substr(9));
  }
  return names;
}

// 'R', 'S', 'T', 'Z'... or 0 if gone.
inline char process_state(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

class DemoRun {
 public:
  explicit DemoRun(const std::vector<std::string>& args) {
    char out_tmpl[] = "/tmp/ssi-adversarial-out-XXXXXX";
    char err_tmpl[] = "/tmp/ssi-adversarial-err-XXXXXX";
    int out = mkstemp(out_tmpl);
    int err = mkstemp(err_tmpl);
    out_path_ = out_tmpl;
    err_path_ = err_tmpl;
    started_ = Clock::now();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out, 1);
      dup2(err, 2);
      std::vector<std::string> a{SSI_BINARY};
      a.insert(a.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(SSI_BINARY, argv.data());
      _exit(127);
    }
    close(out);
    close(err);
  }
  ~DemoRun() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    unlink(out_path_.c_str());
    unlink(err_path_.c_str());
  }
  DemoRun(const DemoRun&) = delete;
  DemoRun& operator=(const DemoRun&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const { return slurp(out_path_); }
  std::string err() const { return slurp(err_path_); }

  // The node processes once all `n` exist and listen, within `limit`.
  std::vector<pid_t> wait_for_nodes(std::size_t n, std::chrono::milliseconds limit = 20s) {
    auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      std::vector<pid_t> nodes;
      for (std::size_t id = 0; id < n; ++id) nodes.push_back(node(id));
      bool all = true;
      for (pid_t p : nodes) all = all && p > 0 && (!tcp_listen_ports(p).empty() || !shm_listen_names(p).empty());
      if (all) return nodes;
      std::this_thread::sleep_for(20ms);
    }
    return {};
  }

  // Exit code (128+sig if killed), or -1 if still running after `limit`.
  int wait(std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ended_ = Clock::now();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }
  Clock::duration ran_for() const { return ended_ - started_; }

 private:
  pid_t node(std::size_t id) const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
    pid_t c;
    while (f >> c) {
      std::string cmd = slurp("/proc/" + std::to_string(c) + "/cmdline");
      if (cmd.find(std::string("--id") + '\0' + std::to_string(id) + '\0') != std::string::npos) return c;
    }
    return -1;
  }

  pid_t pid_ = -1;
  std::string out_path_, err_path_;
  Clock::time_point started_{}, ended_{};
};

}  // namespace ssi::adversarial
