// `ssi stats ADDR`: the client side of the live metrics endpoint.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/host_port.hpp"
#include "cluster/metrics.hpp"
#include "report.hpp"
#include "unix_address.hpp"

namespace ssi::cluster {
namespace {

constexpr int kReplyTimeoutMs = 3000;

Result<int> connect_to(const std::string& address) {
  if (address.find('/') != std::string::npos) {
    SSI_ASSIGN_OR_RETURN(sockaddr_un sa, unix_address(address));
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return fd;
    int err = errno;
    if (fd >= 0) ::close(fd);
    return make_error(Errc::kSystem, fmt::format("cannot connect to {}: {}", address, std::strerror(err)));
  }
  SSI_ASSIGN_OR_RETURN(HostPort hp, parse_host_port(address, false));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int g = getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &found); g != 0)
    return make_error(Errc::kInvalidArgument, fmt::format("{}: {}", hp.host, gai_strerror(g)));
  int err = ECONNREFUSED;
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      freeaddrinfo(found);
      return fd;
    }
    err = errno;
    ::close(fd);
  }
  freeaddrinfo(found);
  return make_error(Errc::kSystem, fmt::format("cannot connect to {}: {}", address, std::strerror(err)));
}

}  // namespace

Result<std::string> metrics_request(const std::string& address, const std::string& request,
                                    std::chrono::milliseconds timeout) {
  const auto limit_ms = timeout.count();
  SSI_ASSIGN_OR_RETURN(int fd, connect_to(address));
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return make_error(Errc::kSystem, fmt::format("{}: send failed", address));
  }
  std::string reply;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      ::close(fd);
      return make_error(Errc::kTimeout, fmt::format("{}: no complete reply within {} ms", address, limit_ms));
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // the server closes after its reply
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

namespace {
Result<std::string> query(const std::string& address) {
  return metrics_request(address, "{\"execute\":\"query-stats\"}\n", std::chrono::milliseconds(kReplyTimeoutMs));
}
}  // namespace

int run_stats_command(const std::string& address, bool json) {
  auto reply = query(address);
  if (!reply.ok()) {
    std::fprintf(stderr, "ssi: error: stats: %s\n", reply.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  auto snapshot = parse_query_stats(*reply);
  if (!snapshot.ok()) {
    std::fprintf(stderr, "ssi: error: stats: %s: %s\n", address.c_str(), snapshot.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  std::printf("machine up %.1f s, %llu samples\n", snapshot->uptime_ms / 1000.0,
              static_cast<unsigned long long>(snapshot->samples));
  std::string nodes = human_stats_table(snapshot->nodes);
  std::printf("%s", nodes.empty() ? "no counters yet (the machine is still starting)\n" : nodes.c_str());
  std::string vcpus = per_vcpu_table(*snapshot);
  if (!vcpus.empty()) std::printf("\n%s", vcpus.c_str());
  return 0;
}

}  // namespace ssi::cluster
