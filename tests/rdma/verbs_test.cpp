// What of the verbs backend runs without a NIC: the connection-info text
// codec, the registration bookkeeping (with a fake registrar) and the clear
// "no RDMA device" error.
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/verbs_conn_info.hpp"
#include "rdma/verbs_device.hpp"
#include "rdma/verbs_fabric.hpp"
#include "rdma/verbs_registration.hpp"

namespace ssi::rdma {
namespace {

VerbsConnInfo sample() {
  VerbsConnInfo i;
  i.lid = 0x1a2b;
  i.qpn = 0xabcdef;
  i.psn = 0x123456;
  for (std::size_t b = 0; b < 16; ++b) i.gid[b] = static_cast<std::uint8_t>(0xf0 + b);
  i.mtu = 4096;
  i.rkey = 0xdeadbeef;
  i.addr = 0x00007f0012345000;
  i.length = 1ull << 33;
  return i;
}

TEST(VerbsConnInfo, EncodeDecodeRoundTrips) {
  auto info = sample();
  std::string text = info.encode();
  EXPECT_EQ(text.rfind("verbs:1-1a2b-abcdef-123456-", 0), 0u) << text;
  auto back = VerbsConnInfo::decode(text);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, info);
  VerbsConnInfo zero;
  auto z = VerbsConnInfo::decode(zero.encode());
  ASSERT_TRUE(z.ok()) << z.error().to_string();
  EXPECT_EQ(*z, zero);
}

TEST(VerbsConnInfo, DecodeAcceptsUppercaseHex) {
  std::string text = sample().encode();
  for (std::size_t i = 6; i < text.size(); ++i) text[i] = static_cast<char>(std::toupper(text[i]));
  auto back = VerbsConnInfo::decode(text);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, sample());
}

TEST(VerbsConnInfo, MalformedInputIsRejectedWithTheReason) {
  const std::string good = sample().encode();
  struct Case {
    std::string text;
    Errc code;
    std::string mentions;
  };
  std::string short_qpn = good;
  short_qpn.replace(short_qpn.find("-abcdef-"), 8, "-abcde-");
  std::string bad_digit = good;
  bad_digit[good.find("deadbeef")] = 'g';
  std::string bad_mtu = good;
  bad_mtu.replace(bad_mtu.find("-1000-"), 6, "-0300-");
  std::string bad_gid = good;
  bad_gid[good.find("f0f1")] = 'z';
  const std::vector<Case> cases = {
      {"", Errc::kInvalidArgument, "prefix"},
      {"tcp:127.0.0.1:80", Errc::kInvalidArgument, "prefix"},
      {"verbs:", Errc::kVersionMismatch, "version"},
      {"verbs:2-1a2b", Errc::kVersionMismatch, "version"},
      {good.substr(0, good.rfind('-')), Errc::kInvalidArgument, "fields"},
      {good + "-00", Errc::kInvalidArgument, "fields"},
      {short_qpn, Errc::kInvalidArgument, "qpn"},
      {bad_digit, Errc::kInvalidArgument, "rkey"},
      {bad_mtu, Errc::kInvalidArgument, "mtu"},
      {bad_gid, Errc::kInvalidArgument, "gid"},
  };
  for (const auto& c : cases) {
    auto r = VerbsConnInfo::decode(c.text);
    ASSERT_FALSE(r.ok()) << "accepted: '" << c.text << "'";
    EXPECT_EQ(r.error().code, c.code) << c.text << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos)
        << c.text << ": " << r.error().message;
  }
}

// Hands out increasing keys and records what is registered.
class FakeRegistrar : public MemoryRegistrar {
 public:
  Result<Registration> register_region(std::span<std::byte> region) override {
    if (fail_next) {
      fail_next = false;
      return Error::from_errno("ibv_reg_mr (fake)", ENOMEM);
    }
    ++next;
    live[next] = region.size();
    return Registration{{next * 10, next * 10 + 1}, next};
  }
  void deregister(std::uintptr_t handle) override { live.erase(handle); }

  std::uint32_t next = 0;
  bool fail_next = false;
  std::map<std::uintptr_t, std::size_t> live;
};

TEST(RegistrationTable, FindsKeysForBuffersInsideOneRegion) {
  FakeRegistrar fake;
  std::vector<std::byte> a(8192), b(4096);
  RegistrationTable table(fake);
  auto ka = table.add(a);
  auto kb = table.add(b);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_NE(*ka, *kb);
  EXPECT_EQ(table.find(a.data(), 8192).value(), *ka);
  EXPECT_EQ(table.find(a.data() + 4096, 4096).value(), *ka);
  EXPECT_EQ(table.find(b.data() + 100, 64).value(), *kb);
  EXPECT_EQ(table.find(a.data() + 4097, 4096).error().code, Errc::kNotFound);  // runs past the end
  std::byte outside{};
  EXPECT_EQ(table.find(&outside, 1).error().code, Errc::kNotFound);
}

TEST(RegistrationTable, RejectsOverlapsAndEmptyRegions) {
  FakeRegistrar fake;
  std::vector<std::byte> mem(16384);
  std::span<std::byte> all(mem);
  RegistrationTable table(fake);
  ASSERT_TRUE(table.add(all.subspan(4096, 4096)).ok());
  EXPECT_EQ(table.add(all.subspan(0, 4097)).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(table.add(all.subspan(8191, 10)).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(table.add(all.subspan(5000, 10)).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(table.add(all.subspan(0, 0)).error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(table.add(all.subspan(0, 4096)).ok());     // adjacent below
  EXPECT_TRUE(table.add(all.subspan(8192, 4096)).ok());  // adjacent above
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(fake.live.size(), 3u);  // failed adds registered nothing
}

TEST(RegistrationTable, RemovingAndDestroyingDeregisters) {
  FakeRegistrar fake;
  std::vector<std::byte> a(4096), b(4096);
  {
    RegistrationTable table(fake);
    ASSERT_TRUE(table.add(a).ok());
    ASSERT_TRUE(table.add(b).ok());
    ASSERT_TRUE(table.remove(a.data()).ok());
    EXPECT_EQ(fake.live.size(), 1u);
    EXPECT_EQ(table.remove(a.data()).error().code, Errc::kNotFound);
    EXPECT_EQ(table.find(a.data(), 1).error().code, Errc::kNotFound);
  }
  EXPECT_TRUE(fake.live.empty());
}

TEST(RegistrationTable, RegistrarFailureIsReportedAndNotRecorded) {
  FakeRegistrar fake;
  fake.fail_next = true;
  std::vector<std::byte> a(4096);
  RegistrationTable table(fake);
  auto r = table.add(a);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().sys_errno, ENOMEM);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_TRUE(table.add(a).ok());
}

TEST(VerbsDevice, OpenWithoutDeviceIsUnsupportedWithReason) {
  if (rdma_device_count() > 0) GTEST_SKIP() << "an RDMA device is present; this checks the no-device path";
  auto d = VerbsDevice::open({});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, Errc::kUnsupported);
  EXPECT_EQ(d.error().message.rfind("no RDMA device: ", 0), 0u) << d.error().message;
}

}  // namespace
}  // namespace ssi::rdma
