// The live metrics endpoint: one thread, one client at a time (a query is
// a few KiB), every read bounded by a timeout so a silent client cannot
// hold it. The protocol is chosen by the first bytes: "GET" = Prometheus
// over HTTP, anything else = a QMP-like JSON command.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "cluster/host_port.hpp"
#include "cluster/metrics.hpp"
#include "cluster/checkpoint_orders.hpp"
#include "cluster/retire_orders.hpp"
#include "cluster/move_queue.hpp"
#include "control_reply.hpp"
#include "unix_address.hpp"

namespace ssi::cluster {
namespace {

constexpr std::size_t kMaxRequest = 4096;
constexpr int kClientTimeoutMs = 1000;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

bool is_unix_path(const std::string& address) { return address.find('/') != std::string::npos; }

Result<int> listen_unix(const std::string& path) {
  SSI_ASSIGN_OR_RETURN(sockaddr_un sa, unix_address(path));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(Errc::kSystem, fmt::format("socket: {}", std::strerror(errno)));
  ::unlink(path.c_str());  // a stale socket of an earlier run
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 8) != 0) {
    int err = errno;
    ::close(fd);
    return make_error(Errc::kSystem, fmt::format("cannot listen on {}: {}", path, std::strerror(err)));
  }
  return fd;
}

bool write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads until a newline (JSON) or an empty line (HTTP), EOF, the size
// limit or the timeout.
std::string read_request(int fd) {
  std::string req;
  char buf[512];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kClientTimeoutMs);
  while (req.size() < kMaxRequest) {
    bool http = req.starts_with("GET");
    if (http ? req.find("\r\n\r\n") != std::string::npos || req.find("\n\n") != std::string::npos
             : req.find('\n') != std::string::npos)
      break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    req.append(buf, static_cast<std::size_t>(n));
  }
  return req;
}

}  // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address) {
  int fd = -1;
  std::string where = address, unix_path;
  if (is_unix_path(address)) {
    SSI_ASSIGN_OR_RETURN(fd, listen_unix(address));
    unix_path = address;
  } else {
    SSI_ASSIGN_OR_RETURN(HostPort hp, parse_host_port(address, true));
    SSI_ASSIGN_OR_RETURN(auto sock, coord::listen_socket(hp.host, hp.port));
    fd = sock.first;
    where = fmt::format("{}:{}", hp.host, sock.second);
  }
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer(fd, where, unix_path));
  if (::pipe2(server->wake_, O_CLOEXEC) != 0)
    return make_error(Errc::kSystem, fmt::format("pipe: {}", std::strerror(errno)));
  server->thread_ = std::thread([s = server.get()] { s->serve(); });
  return server;
}

MetricsServer::MetricsServer(int fd, std::string address, std::string unix_path)
    : fd_(fd), address_(std::move(address)), unix_path_(std::move(unix_path)), opened_ns_(now_ns()) {}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    char c = 0;
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
  }
  for (int p : wake_)
    if (p >= 0) ::close(p);
  ::close(fd_);
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void MetricsServer::publish(const std::vector<coord::NodeReport>& nodes) {
  std::lock_guard lock(mu_);
  latest_.nodes = nodes;
  ++latest_.samples;
}

MetricsSnapshot MetricsServer::snapshot() const {
  std::lock_guard lock(mu_);
  MetricsSnapshot s = latest_;
  s.uptime_ms = (now_ns() - opened_ns_) / 1'000'000;
  return s;
}

void MetricsServer::serve() {
  for (;;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    answer(client);
    ::close(client);
  }
}

void MetricsServer::answer(int client) {
  std::string req = read_request(client);
  MetricsSnapshot s = snapshot();
  if (req.starts_with("GET")) {
    std::string body = prometheus_text(s);
    write_all(client, fmt::format("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                                  "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                                  body.size(), body));
    return;
  }
  auto j = parse_control(req);
  auto cmd = j && j->contains("execute") && (*j)["execute"].is_string() ? (*j)["execute"].get<std::string>() : "";
  if (cmd == "query-stats") {
    write_all(client, query_stats_json(s) + "\n");
  } else if (cmd == "move-vcpu" && moves_.load()) {
    write_all(client, answer_move_request(*moves_.load(), *j) + "\n");
  } else if (cmd == "checkpoint" && checkpoints_.load()) {
    write_all(client, answer_checkpoint_request(*checkpoints_.load(), *j) + "\n");
  } else if (cmd == "retire-node" && retires_.load()) {
    write_all(client, answer_retire_request(*retires_.load(), *j) + "\n");
  } else {
    write_all(client, qmp_error(j ? "known commands: query-stats, move-vcpu, checkpoint, retire-node (or HTTP GET /metrics)"
                                  : "not a JSON object: send {\"execute\":\"query-stats\"} (or HTTP GET /metrics)",
                                "CommandNotFound") +
                          "\n");
  }
}

}  // namespace ssi::cluster
