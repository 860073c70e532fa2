// A hostile peer on raw sockets: dials, writes frames or bytes, and sees
// whether the other side closed on it. Every wait is bounded.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <span>
#include <vector>

#include "base/unique_fd.hpp"
#include "rdma/codec.hpp"

namespace ssi::adversarial {

// A connected blocking socket to 127.0.0.1:port, or an invalid fd.
inline UniqueFd dial_tcp(std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return UniqueFd();
  return fd;
}

inline void send_bytes(int fd, std::span<const std::byte> bytes) {
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

inline void send_frame(int fd, rdma::FrameHeader h, std::span<const std::byte> payload = {}) {
  h.payload_len = static_cast<std::uint32_t>(payload.size());
  auto head = rdma::encode_header(h);
  std::vector<std::byte> all(head.begin(), head.end());
  all.insert(all.end(), payload.begin(), payload.end());
  send_bytes(fd, all);
}

// True once the peer closed (EOF / reset) within `limit`; bytes it sent
// meanwhile are read and dropped.
inline bool closed_within(int fd, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::byte buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
}

}  // namespace ssi::adversarial
