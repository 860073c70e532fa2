// ShmChannel rendezvous: fd passing, ack/nack, liveness through the socket.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/shm_channel.hpp"

namespace ssi::rdma {
namespace {

bool readable_within(int fd, int ms) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, ms) == 1;
}

std::vector<std::byte> bytes_of(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string pop_string(ShmRing& r) {
  auto rec = r.peek();
  if (!rec.ok() || !rec->has_value()) return "<none>";
  std::string s(reinterpret_cast<const char*>((*rec)->data()), (*rec)->size());
  r.pop();
  return s;
}

TEST(ShmChannel, ConnectorAndAcceptorShareBothRingsAndDoorbells) {
  auto l = ShmListener::listen(ShmListener::unique_name());
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  auto c = ShmChannel::connect(l->name(), NodeId{1}, NodeId{2}, {8, 256});
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  // The connector may use the rings before the acceptor has even accepted.
  auto ping = bytes_of("ping");
  ASSERT_EQ(c->tx().try_push({ping}), ShmRing::Push::kPushed);
  ASSERT_TRUE(c->ring_peer().ok());
  ASSERT_TRUE(readable_within(l->fd(), 1000));
  auto a = l->accept(NodeId{2});
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  ASSERT_TRUE(a->has_value());
  ShmChannel& acc = **a;
  EXPECT_EQ(acc.peer(), NodeId{1});
  EXPECT_FALSE(acc.initiated_here());
  EXPECT_TRUE(acc.bell().drain());
  EXPECT_EQ(pop_string(acc.rx()), "ping");
  auto pong = bytes_of("pong");
  ASSERT_EQ(acc.tx().try_push({pong}), ShmRing::Push::kPushed);
  ASSERT_TRUE(acc.ring_peer().ok());
  EXPECT_TRUE(c->bell().drain());
  EXPECT_EQ(pop_string(c->rx()), "pong");
  ASSERT_TRUE(readable_within(c->socket_fd(), 1000));
  EXPECT_TRUE(c->on_socket_event().ok());
  EXPECT_TRUE(c->acknowledged());
  // Nothing else pending on the listener.
  auto none = l->accept(NodeId{2});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(ShmChannel, ConnectToAbsentListenerFailsWithErrno) {
  auto c = ShmChannel::connect("no-such-listener-" + ShmListener::unique_name(), NodeId{1},
                               NodeId{2});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::kSystem);
  EXPECT_EQ(c.error().sys_errno, ECONNREFUSED);
}

TEST(ShmChannel, HelloForAnotherNodeIsRejectedOnBothSides) {
  auto l = ShmListener::listen(ShmListener::unique_name());
  ASSERT_TRUE(l.ok());
  auto c = ShmChannel::connect(l->name(), NodeId{1}, NodeId{5});
  ASSERT_TRUE(c.ok());
  auto a = l->accept(NodeId{2});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, Errc::kProtocol);
  ASSERT_TRUE(readable_within(c->socket_fd(), 1000));
  auto ev = c->on_socket_event();
  ASSERT_FALSE(ev.ok());
  EXPECT_NE(ev.error().message.find("rejected"), std::string::npos) << ev.error().message;
}

TEST(ShmChannel, GarbageHelloIsRejectedAndListenerStaysUsable) {
  auto l = ShmListener::listen(ShmListener::unique_name());
  ASSERT_TRUE(l.ok());
  int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = "ssi-shm-" + l->name();
  std::memcpy(addr.sun_path + 1, path.data(), path.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + path.size());
  ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&addr), len), 0);
  const char junk[] = "definitely not a hello";
  ASSERT_GT(::send(s, junk, sizeof junk, 0), 0);
  auto a = l->accept(NodeId{2});
  EXPECT_FALSE(a.ok());
  ::close(s);
  auto c = ShmChannel::connect(l->name(), NodeId{1}, NodeId{2});
  ASSERT_TRUE(c.ok());
  auto a2 = l->accept(NodeId{2});
  ASSERT_TRUE(a2.ok()) << a2.error().to_string();
  EXPECT_TRUE(a2->has_value());
}

TEST(ShmChannel, KilledPeerIsSeenThroughTheLivenessSocket) {
  auto name = ShmListener::unique_name();
  auto l = ShmListener::listen(name);
  ASSERT_TRUE(l.ok());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = ShmChannel::connect(name, NodeId{7}, NodeId{2});
    if (!c.ok()) ::_exit(1);
    ::pause();  // until SIGKILLed
    ::_exit(0);
  }
  ASSERT_TRUE(readable_within(l->fd(), 5000));
  auto a = l->accept(NodeId{2});
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->peer(), NodeId{7});
  EXPECT_FALSE(readable_within((*a)->socket_fd(), 50));  // alive: nothing to read
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ASSERT_TRUE(readable_within((*a)->socket_fd(), 5000)) << "death not signalled in 5 s";
  auto ev = (*a)->on_socket_event();
  ASSERT_FALSE(ev.ok());
  EXPECT_EQ(ev.error().code, Errc::kDisconnected);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
}

}  // namespace
}  // namespace ssi::rdma
