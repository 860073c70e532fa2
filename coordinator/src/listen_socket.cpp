#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "coordinator/coordinator.hpp"

namespace ssi::coord {

Result<std::pair<int, std::uint16_t>> listen_socket(const std::string& host, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return make_error(Errc::kInvalidArgument, fmt::format("not an IPv4 address: '{}'", host));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0) {
    Error e = Error::from_errno(fmt::format("listen on {}:{}", host, port));
    close(fd);
    return e;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return std::pair<int, std::uint16_t>{fd, ntohs(addr.sin_port)};
}

}  // namespace ssi::coord
