#include "floors.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "rdma/shm_memory.hpp"
#include "rdma/shm_ring.hpp"

namespace ssi::bench {

namespace {

using rdma::Doorbell;
using rdma::SharedMemory;
using rdma::ShmRing;
using Clock = std::chrono::steady_clock;
constexpr int kWarmup = 100;

double ns_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

// ---- sockets ----
bool read_full(int fd, std::byte* buf, std::size_t n, std::chrono::microseconds spin) {
  while (n > 0) {
    if (!wait_readable(fd, spin)) return false;
    auto r = ::read(fd, buf, n);
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_full(int fd, const std::byte* buf, std::size_t n) {
  while (n > 0) {
    auto r = ::write(fd, buf, n);
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Echoes `bytes`-sized messages (ping-pong) or, with count > 0, swallows
// count messages and answers one byte (stream).
void socket_server(int fd, std::size_t bytes, int count, std::chrono::microseconds spin) {
  std::vector<std::byte> buf(bytes);
  if (count > 0) {
    for (int i = 0; i < count; ++i)
      if (!read_full(fd, buf.data(), bytes, spin)) return;
    write_full(fd, buf.data(), 1);
    return;
  }
  while (read_full(fd, buf.data(), bytes, spin) && write_full(fd, buf.data(), bytes)) {
  }
}

// Connects a client socket to a forked server; returns the client fd or -1.
int socket_connect(FloorKind kind, std::size_t bytes, int count, const Placement& where,
                   std::unique_ptr<ForkedServer>* server) {
  if (kind == FloorKind::kUnix) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    *server = std::make_unique<ForkedServer>(where.server_cpu, [&](int report) {
      ::close(sv[0]);
      report_line(report, "ready");
      socket_server(sv[1], bytes, count, where.spin);
    });
    ::close(sv[1]);
    return sv[0];
  }
  *server = std::make_unique<ForkedServer>(where.server_cpu, [&](int report) {
    int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(l, 1) != 0) return;
    ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
    report_line(report, std::to_string(ntohs(a.sin_port)));
    int c = ::accept(l, nullptr, nullptr);
    if (c < 0) return;
    nodelay(c);
    socket_server(c, bytes, count, where.spin);
  });
  if (!(*server)->ok()) return -1;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi((*server)->line())));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  nodelay(fd);
  return fd;
}

// ---- shm ring ----
// One end of a ring pair: sends and receives whole records with the same
// sleep/wake protocol as ShmTransport, minus frames and fibers.
struct ShmEnd {
  ShmRing tx, rx;
  const Doorbell* mine;
  const Doorbell* theirs;
  std::chrono::microseconds spin;

  bool wait_bell() {
    auto woke = mine->wait(10000);
    return woke.ok() && *woke;
  }
  bool send(std::span<const std::byte> rec) {
    while (tx.try_push({rec}) != ShmRing::Push::kPushed) {
      if (tx.prepare_wait_for_space() && !wait_bell()) return false;
    }
    if (tx.take_sleeping_consumer()) (void)theirs->ring();
    return true;
  }
  bool recv(std::span<std::byte> out) {
    auto until = Clock::now() + spin;
    for (;;) {
      auto rec = rx.peek();
      if (!rec.ok()) return false;
      if (rec->has_value()) {
        std::memcpy(out.data(), (*rec)->data(), std::min(out.size(), (*rec)->size()));
        rx.pop();
        if (rx.take_waiting_producer()) (void)theirs->ring();
        return true;
      }
      if (Clock::now() < until) continue;
      if (rx.prepare_sleep()) {
        if (!wait_bell()) return false;
        rx.woke_up();
      }
    }
  }
};

struct ShmPair {
  SharedMemory mem;
  Doorbell client_bell, server_bell;
  ShmEnd client, server;
};

std::unique_ptr<ShmPair> make_shm_pair(std::size_t bytes, std::chrono::microseconds spin) {
  ShmRing::Layout layout{64, static_cast<std::uint32_t>(std::max<std::size_t>(bytes, 64))};
  std::size_t ring = (ShmRing::bytes_needed(layout) + 4095) / 4096 * 4096;
  auto mem = SharedMemory::create("ssi-bench-floor", 2 * ring);
  auto cb = Doorbell::create();
  auto sb = Doorbell::create();
  if (!mem.ok() || !cb.ok() || !sb.ok()) return nullptr;
  auto p = std::make_unique<ShmPair>();
  p->mem = std::move(*mem);
  p->client_bell = std::move(*cb);
  p->server_bell = std::move(*sb);
  auto up = ShmRing::create(p->mem.bytes().first(ring), layout);
  auto down = ShmRing::create(p->mem.bytes().subspan(ring), layout);
  if (!up.ok() || !down.ok()) return nullptr;
  p->client = {*up, *down, &p->client_bell, &p->server_bell, spin};
  p->server = {*down, *up, &p->server_bell, &p->client_bell, spin};
  return p;
}

}  // namespace

const char* floor_name(FloorKind kind) {
  switch (kind) {
    case FloorKind::kUnix: return "unix socketpair";
    case FloorKind::kTcp: return "tcp 127.0.0.1 nodelay";
    case FloorKind::kShm: return "raw shm ring + eventfd";
  }
  return "?";
}

std::vector<double> floor_round_trips(FloorKind kind, std::size_t bytes, const Placement& where,
                                      int iterations) {
  std::vector<std::byte> buf(bytes, std::byte{0x5a});
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(iterations));
  if (kind == FloorKind::kShm) {
    auto p = make_shm_pair(bytes, where.spin);
    if (!p) return {};
    ForkedServer server(where.server_cpu, [&](int report) {
      report_line(report, "ready");
      std::vector<std::byte> in(bytes);
      while (p->server.recv(in) && p->server.send(in)) {
      }
    });
    if (!server.ok()) return {};
    for (int i = -kWarmup; i < iterations; ++i) {
      auto t0 = Clock::now();
      if (!p->client.send(buf) || !p->client.recv(buf)) return {};
      if (i >= 0) ns.push_back(ns_since(t0));
    }
    return ns;
  }
  std::unique_ptr<ForkedServer> server;
  int fd = socket_connect(kind, bytes, 0, where, &server);
  if (fd < 0) return {};
  for (int i = -kWarmup; i < iterations; ++i) {
    auto t0 = Clock::now();
    if (!write_full(fd, buf.data(), bytes) || !read_full(fd, buf.data(), bytes, where.spin)) {
      ns.clear();
      break;
    }
    if (i >= 0) ns.push_back(ns_since(t0));
  }
  ::close(fd);
  return ns;
}

double floor_stream(FloorKind kind, std::size_t bytes, const Placement& where, int count) {
  std::vector<std::byte> buf(bytes, std::byte{0x5a});
  if (kind == FloorKind::kShm) {
    auto p = make_shm_pair(bytes, where.spin);
    if (!p) return -1;
    ForkedServer server(where.server_cpu, [&](int report) {
      report_line(report, "ready");
      std::vector<std::byte> in(bytes);
      for (int i = 0; i < count; ++i)
        if (!p->server.recv(in)) return;
      p->server.send(std::span(in).first(1));
    });
    if (!server.ok()) return -1;
    auto t0 = Clock::now();
    for (int i = 0; i < count; ++i)
      if (!p->client.send(buf)) return -1;
    if (!p->client.recv(buf)) return -1;
    return ns_since(t0) / 1e9;
  }
  std::unique_ptr<ForkedServer> server;
  int fd = socket_connect(kind, bytes, count, where, &server);
  if (fd < 0) return -1;
  auto t0 = Clock::now();
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) ok = write_full(fd, buf.data(), bytes);
  ok = ok && read_full(fd, buf.data(), 1, where.spin);
  double s = ns_since(t0) / 1e9;
  ::close(fd);
  return ok ? s : -1;
}

}  // namespace ssi::bench
