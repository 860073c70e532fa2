#include "tcp_connection.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>

#include "base/log.hpp"

namespace ssi::rdma {
namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;
// Reads per wake-up: then other fibers (the handlers) get to run.
constexpr int kReadsPerWakeup = 4;
constexpr std::size_t kMaxQueuedBytes = 4 << 20;
constexpr auto kSendStallTimeout = std::chrono::seconds(30);
constexpr int kMaxIov = 64;

std::uint32_t interest(bool want_out) {
  return EPOLLIN | EPOLLRDHUP | (want_out ? std::uint32_t{EPOLLOUT} : 0u);
}

struct NoLock {  // everything runs on the reactor thread
  void lock() {}
  void unlock() {}
};

}  // namespace

Result<sockaddr_in> parse_inet_address(const Address& address, std::string_view scheme) {
  auto bad = [&] {
    return make_error(Errc::kInvalidArgument, fmt::format("bad {} address '{}'", scheme, address));
  };
  const std::size_t prefix = scheme.size() + 1;
  if (!address.starts_with(scheme) || address.size() <= prefix || address[scheme.size()] != ':') return bad();
  auto colon = address.rfind(':');
  if (colon <= prefix) return bad();
  std::string host = address.substr(prefix, colon - prefix);
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) return bad();
  char* end = nullptr;
  unsigned long port = std::strtoul(address.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port > 65535 || end == address.c_str() + colon + 1) return bad();
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  return sa;
}

Result<UniqueFd> tcp_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket(AF_INET, SOCK_STREAM)");
  return fd;
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Result<std::pair<UniqueFd, Address>> tcp_listen(const Address& where, std::string_view scheme) {
  SSI_ASSIGN_OR_RETURN(sockaddr_in sa, parse_inet_address(where, scheme));
  SSI_ASSIGN_OR_RETURN(UniqueFd fd, tcp_socket());
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return Error::from_errno(fmt::format("bind({})", where));
  if (::listen(fd.get(), 128) != 0) return Error::from_errno(fmt::format("listen({})", where));
  socklen_t len = sizeof sa;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  char host[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
  return std::pair{std::move(fd), fmt::format("{}:{}:{}", scheme, host, ntohs(sa.sin_port))};
}

Result<Dialing> start_dial(const sockaddr_in& sa, const std::string& what) {
  SSI_ASSIGN_OR_RETURN(UniqueFd fd, tcp_socket());
  set_nodelay(fd.get());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return Dialing{std::move(fd), false};
  if (errno != EINPROGRESS) return Error::from_errno(what);
  return Dialing{std::move(fd), true};
}

std::optional<std::pair<UniqueFd, std::string>> accept_one(int listener) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  UniqueFd fd(::accept4(listener, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!fd) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      log::get("rdma")->warn("accept on fd {}: {}", listener, std::strerror(errno));
    return std::nullopt;
  }
  set_nodelay(fd.get());
  char host[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
  return std::pair{std::move(fd), fmt::format("{}:{}", host, ntohs(sa.sin_port))};
}

void close_unless_settled(Reactor& reactor, const std::shared_ptr<TcpConnection>& conn,
                          boost::fibers::condition_variable_any& changed, std::chrono::milliseconds timeout,
                          std::function<bool(const TcpConnection&)> settled, std::string what) {
  std::weak_ptr<TcpConnection> weak = conn;
  reactor.spawn([weak, &changed, timeout, settled = std::move(settled), what = std::move(what)] {
    NoLock lock;
    auto done = [&] {
      auto c = weak.lock();
      return !c || c->closed() || settled(*c);
    };
    if (changed.wait_for(lock, timeout, done)) return;
    if (auto c = weak.lock()) c->close(make_error(Errc::kTimeout, fmt::format("{} {}", c->description(), what)));
  });
}

TcpConnection::TcpConnection(UniqueFd fd, Reactor& reactor, bool connecting, std::string description)
    : fd_(std::move(fd)), reactor_(reactor), connecting_(connecting), description_(std::move(description)) {}

TcpConnection::~TcpConnection() {
  if (!closed_) close(make_error(Errc::kShutdown, "connection destroyed"), false);
}

Result<void> TcpConnection::start(FrameFn on_frame, CloseFn on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  want_out_ = connecting_;
  // The watch holds a strong reference, dropped by close() (unwatch).
  auto self = shared_from_this();
  return reactor_.watch(fd_.get(), interest(want_out_),
                        [self](std::uint32_t events) { self->on_ready(events); });
}

Result<void> TcpConnection::set_interest(bool want_out) {
  if (want_out == want_out_ || closed_) return ok();
  want_out_ = want_out;
  return reactor_.modify(fd_.get(), interest(want_out));
}

void TcpConnection::fail_errno(const char* what, int err) {
  close(Error{err == ECONNRESET || err == EPIPE ? Errc::kDisconnected : Errc::kSystem,
              fmt::format("{} {}", what, description_), err});
}

void TcpConnection::on_ready(std::uint32_t events) {
  auto self = shared_from_this();  // close() may drop the last other reference
  if (closed_) return;
  if (connecting_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail_errno("connecting to", err);
    connecting_ = false;
  }
  if (!connecting_ && (events & EPOLLOUT)) flush();
  if (!closed_ && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) read_some();
}

void TcpConnection::read_some() {
  std::array<std::byte, kReadBuffer> buf;
  for (int i = 0; i < kReadsPerWakeup && !closed_; ++i) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n > 0) {
      auto self = shared_from_this();
      auto r = decoder_.feed(std::span(buf).first(static_cast<std::size_t>(n)),
                             [&](Frame&& f) {
                               if (!closed_) on_frame_(self, std::move(f));
                             });
      if (!r.ok()) {
        if (on_bad_input && !closed_) on_bad_input(*this, r.error());
        return close(std::move(r).error());
      }
      if (static_cast<std::size_t>(n) < buf.size()) return;  // drained for now
      continue;
    }
    if (n == 0) {
      return close(make_error(Errc::kDisconnected,
                              fmt::format("{} closed the connection{}", description_,
                                          decoder_.mid_frame() ? " in the middle of a frame" : "")));
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    return fail_errno("reading from", errno);
  }
}

Result<void> TcpConnection::send(const Frame& frame) {
  auto self = shared_from_this();
  if (queued_bytes_ > kMaxQueuedBytes && !closed_) {
    NoLock lock;
    if (!drained_.wait_for(lock, kSendStallTimeout,
                           [&] { return closed_ || queued_bytes_ <= kMaxQueuedBytes; })) {
      close(make_error(Errc::kTimeout, fmt::format("{} took nothing for {} s", description_,
                                                   kSendStallTimeout.count())));
    }
  }
  if (closed_) return *error_;
  auto header = encode_header(frame.header);
  auto payload = frame.payload.bytes();
  const std::size_t total = header.size() + payload.size();
  std::size_t sent = 0;
  if (queue_.empty() && !connecting_) {
    iovec iov[2] = {{header.data(), header.size()},
                    {const_cast<std::byte*>(payload.data()), payload.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = payload.empty() ? 1 : 2;
    ssize_t n;
    do {
      n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      fail_errno("writing to", errno);
      return *error_;
    }
    sent = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (sent == total) return ok();
  }
  // Copy only what the kernel did not take; the caller's page is free again.
  std::vector<std::byte> rest;
  rest.reserve(total - sent);
  if (sent < header.size()) rest.insert(rest.end(), header.begin() + sent, header.end());
  std::size_t payload_sent = sent > header.size() ? sent - header.size() : 0;
  rest.insert(rest.end(), payload.begin() + payload_sent, payload.end());
  queued_bytes_ += rest.size();
  queue_.push_back(std::move(rest));
  if (!connecting_) {
    if (auto r = set_interest(true); !r.ok()) close(std::move(r).error());
  }
  return closed_ ? Result<void>(*error_) : ok();
}

void TcpConnection::flush() {
  while (!queue_.empty() && !closed_) {
    iovec iov[kMaxIov];
    int count = 0;
    for (auto it = queue_.begin(); it != queue_.end() && count < kMaxIov; ++it, ++count) {
      std::size_t skip = count == 0 ? queue_head_offset_ : 0;
      iov[count] = {it->data() + skip, it->size() - skip};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return fail_errno("writing to", errno);
    }
    auto left = static_cast<std::size_t>(n);
    queued_bytes_ -= left;
    while (left > 0) {
      std::size_t in_head = queue_.front().size() - queue_head_offset_;
      if (left < in_head) {
        queue_head_offset_ += left;
        break;
      }
      left -= in_head;
      queue_.pop_front();
      queue_head_offset_ = 0;
    }
  }
  if (queue_.empty()) {
    if (auto r = set_interest(false); !r.ok()) return close(std::move(r).error());
  }
  if (queued_bytes_ <= kMaxQueuedBytes) drained_.notify_all();
}

void TcpConnection::close(const Error& why, bool notify) {
  if (closed_) return;
  auto self = weak_from_this().lock();  // null when called from the destructor
  closed_ = true;
  error_ = why;
  reactor_.unwatch(fd_.get());
  fd_.reset();
  queue_.clear();
  queued_bytes_ = 0;
  drained_.notify_all();
  if (notify && on_close_ && self) on_close_(self, why);
}

}  // namespace ssi::rdma
