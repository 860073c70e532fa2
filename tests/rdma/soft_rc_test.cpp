// The soft RC fake itself: it must fail the way a NIC fails, or the verbs
// transport tests that run on it would prove nothing.
#include <array>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/soft_rc.hpp"

namespace ssi::rdma::testing {
namespace {

struct Pair {
  SoftRcNetwork net;
  std::unique_ptr<SoftRcFabric> fa, fb;
  std::unique_ptr<VerbsQp> qa, qb;
  std::vector<std::byte> ma = std::vector<std::byte>(8192), mb = std::vector<std::byte>(8192);
  MemoryKeys ka, kb;

  Pair() {
    fa = std::move(net.make_fabric("a").value());
    fb = std::move(net.make_fabric("b").value());
    qa = std::move(fa->create_qp(16, 16).value());
    qb = std::move(fb->create_qp(16, 16).value());
    auto ra = fa->register_region(ma), rb = fb->register_region(mb);
    ka = ra->keys;
    kb = rb->keys;
    EXPECT_TRUE(qa->connect(qb->local_info()).ok());
    EXPECT_TRUE(qb->connect(qa->local_info()).ok());
  }
  static std::vector<Completion> drain(SoftRcFabric& f) {
    std::array<Completion, 16> buf;
    std::vector<Completion> out;
    for (;;) {
      auto n = f.poll(buf);
      EXPECT_TRUE(n.ok());
      if (!n.ok() || *n == 0) return out;
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
  }
  LocalBuf a_buf(std::size_t off, std::uint32_t len) { return {ma.data() + off, len, ka.lkey}; }
  LocalBuf b_buf(std::size_t off, std::uint32_t len) { return {mb.data() + off, len, kb.lkey}; }
};

TEST(SoftRc, SendLandsInTheOldestReceiveWithImmediateData) {
  Pair p;
  ASSERT_TRUE(p.qb->post_recv(7, p.b_buf(0, 100)).ok());
  ASSERT_TRUE(p.qb->post_recv(8, p.b_buf(100, 100)).ok());
  std::memcpy(p.ma.data(), "hello", 5);
  LocalBuf sge = p.a_buf(0, 5);
  ASSERT_TRUE(p.qa->post_send(1, std::span(&sge, 1), 42u, true).ok());
  EXPECT_TRUE(Pair::drain(*p.fb).empty()) << "nothing runs before the sender's NIC is polled";
  auto sent = Pair::drain(*p.fa);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].status, WcStatus::kSuccess);
  auto got = Pair::drain(*p.fb);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].wr_id, 7u);
  EXPECT_EQ(got[0].byte_len, 5u);
  EXPECT_EQ(got[0].imm, 42u);
  EXPECT_EQ(std::memcmp(p.mb.data(), "hello", 5), 0);
}

TEST(SoftRc, BytesAreReadWhenTheRequestRunsNotWhenPosted) {
  Pair p;
  ASSERT_TRUE(p.qb->post_recv(1, p.b_buf(0, 8)).ok());
  std::memcpy(p.ma.data(), "old", 4);
  LocalBuf sge = p.a_buf(0, 4);
  ASSERT_TRUE(p.qa->post_send(1, std::span(&sge, 1), std::nullopt, true).ok());
  std::memcpy(p.ma.data(), "new", 4);  // reused before the completion: a bug the fake shows
  Pair::drain(*p.fa);
  EXPECT_STREQ(reinterpret_cast<const char*>(p.mb.data()), "new");
}

TEST(SoftRc, SendWithoutPostedReceiveFailsAndFlushesTheQp) {
  Pair p;
  LocalBuf sge = p.a_buf(0, 4);
  ASSERT_TRUE(p.qa->post_send(1, std::span(&sge, 1), std::nullopt, false).ok());
  ASSERT_TRUE(p.qa->post_send(2, std::span(&sge, 1), std::nullopt, false).ok());
  auto c = Pair::drain(*p.fa);
  ASSERT_EQ(c.size(), 2u) << "errors complete even when unsignaled";
  EXPECT_EQ(c[0].status, WcStatus::kRnrRetryExceeded);
  EXPECT_EQ(c[1].status, WcStatus::kFlushed);
}

TEST(SoftRc, SendLargerThanTheReceiveBufferFailsBothSides) {
  Pair p;
  ASSERT_TRUE(p.qb->post_recv(1, p.b_buf(0, 8)).ok());
  ASSERT_TRUE(p.qb->post_recv(2, p.b_buf(8, 8)).ok());
  LocalBuf sge = p.a_buf(0, 9);
  ASSERT_TRUE(p.qa->post_send(1, std::span(&sge, 1), std::nullopt, true).ok());
  auto a = Pair::drain(*p.fa);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, WcStatus::kRemoteInvalidRequest);
  auto b = Pair::drain(*p.fb);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].status, WcStatus::kLocalLength);
  EXPECT_EQ(b[1].status, WcStatus::kFlushed);
}

TEST(SoftRc, WriteChecksRkeyAndBounds) {
  Pair p;
  auto remote = reinterpret_cast<std::uint64_t>(p.mb.data());
  ASSERT_TRUE(p.qa->post_write(1, p.a_buf(0, 4096), remote + 4096, p.kb.rkey, true).ok());
  auto ok = Pair::drain(*p.fa);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].status, WcStatus::kSuccess);
  struct Case {
    const char* what;
    std::uint64_t addr;
    std::uint32_t rkey;
    std::uint32_t len;
  };
  for (Case c : {Case{"wrong rkey", remote, p.kb.rkey + 1000, 16}, Case{"past the end", remote + 4097, p.kb.rkey, 4096},
                 Case{"before the start", remote - 1, p.kb.rkey, 16}}) {
    SCOPED_TRACE(c.what);
    Pair q;  // a fresh pair: the failure moves both QPs to the error state
    auto r = reinterpret_cast<std::uint64_t>(q.mb.data()) + (c.addr - remote);
    std::uint32_t key = c.rkey == p.kb.rkey ? q.kb.rkey : c.rkey;
    ASSERT_TRUE(q.qb->post_recv(9, q.b_buf(0, 8)).ok());
    ASSERT_TRUE(q.qa->post_write(1, q.a_buf(0, c.len), r, key, false).ok());
    auto a = Pair::drain(*q.fa);
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].status, WcStatus::kRemoteAccess);
    auto b = Pair::drain(*q.fb);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].status, WcStatus::kFlushed) << "the responder's QP fails too";
  }
}

TEST(SoftRc, ReadCopiesFromThePeer) {
  Pair p;
  std::memcpy(p.mb.data() + 10, "page", 5);
  ASSERT_TRUE(p.qa->post_read(3, p.a_buf(0, 5), reinterpret_cast<std::uint64_t>(p.mb.data() + 10), p.kb.rkey).ok());
  auto c = Pair::drain(*p.fa);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].opcode, WcOpcode::kRdmaRead);
  EXPECT_STREQ(reinterpret_cast<const char*>(p.ma.data()), "page");
}

TEST(SoftRc, DeadPeerOrFailedQpGivesRetryExceeded) {
  Pair p;
  ASSERT_TRUE(p.qb->post_recv(1, p.b_buf(0, 8)).ok());
  ASSERT_TRUE(p.net.fail_qp(p.qb->qpn()));
  auto flushed = Pair::drain(*p.fb);
  ASSERT_EQ(flushed.size(), 1u);
  EXPECT_EQ(flushed[0].status, WcStatus::kFlushed);
  LocalBuf sge = p.a_buf(0, 4);
  ASSERT_TRUE(p.qa->post_send(1, std::span(&sge, 1), std::nullopt, true).ok());
  auto c = Pair::drain(*p.fa);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, WcStatus::kRetryExceeded);
}

TEST(SoftRc, CompletionChannelRingsOnlyWhenArmed) {
  Pair p;
  auto readable = [](int fd) {
    std::uint64_t v;
    return ::read(fd, &v, sizeof v) == sizeof v;
  };
  ASSERT_TRUE(p.qb->post_recv(1, p.b_buf(0, 8)).ok());
  ASSERT_TRUE(p.qb->post_recv(2, p.b_buf(8, 8)).ok());
  LocalBuf sge = p.a_buf(0, 4);
  ASSERT_TRUE(p.qa->post_send(1, std::span(&sge, 1), std::nullopt, false).ok());
  Pair::drain(*p.fa);
  EXPECT_FALSE(readable(p.fb->completion_fd())) << "not armed: no event";
  ASSERT_EQ(Pair::drain(*p.fb).size(), 1u);
  ASSERT_TRUE(p.fb->arm().ok());
  ASSERT_TRUE(p.qa->post_send(2, std::span(&sge, 1), std::nullopt, false).ok());
  Pair::drain(*p.fa);
  EXPECT_TRUE(readable(p.fb->completion_fd()));
}

}  // namespace
}  // namespace ssi::rdma::testing
