#include "rdma/codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace ssi::rdma {
namespace {

std::vector<std::byte> wire(const Frame& f) {
  auto h = encode_header(f.header);
  std::vector<std::byte> out(h.begin(), h.end());
  auto p = f.payload.bytes();
  out.insert(out.end(), p.begin(), p.end());
  return out;
}

Frame frame_with_payload(std::uint64_t i, std::size_t len) {
  Frame f = Frame::make(0xf000 + (i % 7), i, ~i, i * 3, i ^ 0x55);
  f.payload = Payload::allocate(len);
  auto b = f.payload.mutable_bytes();
  for (std::size_t k = 0; k < len; ++k) b[k] = static_cast<std::byte>(i + k);
  f.header.payload_len = static_cast<std::uint32_t>(len);
  return f;
}

TEST(Codec, HeaderRoundTrips) {
  Frame f = frame_with_payload(5, 10);
  auto bytes = encode_header(f.header);
  FrameHeader h = decode_header(bytes);
  EXPECT_EQ(0, std::memcmp(&h, &f.header, sizeof h));
  EXPECT_TRUE(validate_header(h).ok());
}

TEST(Codec, HeaderIsGenericAndSixtyFourBytes) {
  // The wire layout: the arguments follow the routing fields, one per 8 bytes.
  static_assert(sizeof(FrameHeader) == 64);
  EXPECT_EQ(offsetof(FrameHeader, request_id), 16u);
  EXPECT_EQ(offsetof(FrameHeader, src), 24u);
  EXPECT_EQ(offsetof(FrameHeader, arg0), 32u);
  EXPECT_EQ(offsetof(FrameHeader, arg3), 56u);
  Frame f = Frame::make(0xf123, 1, 2, 3, 4);
  auto bytes = encode_header(f.header);
  std::uint64_t arg3 = 0;
  std::memcpy(&arg3, bytes.data() + 56, sizeof arg3);
  EXPECT_EQ(arg3, 4u);
}

TEST(Codec, ValidationNamesTheProblem) {
  FrameHeader h;
  h.type = 0x0100;
  EXPECT_TRUE(validate_header(h).ok());
  auto check = [&](auto mutate, Errc code) {
    FrameHeader bad = h;
    mutate(bad);
    auto r = validate_header(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, code) << r.error().to_string();
    EXPECT_FALSE(r.error().message.empty());
  };
  check([](FrameHeader& b) { b.magic = 1; }, Errc::kProtocol);
  check([](FrameHeader& b) { b.version = kProtocolVersion + 1; }, Errc::kVersionMismatch);
  check([](FrameHeader& b) { b.payload_len = kMaxPayload + 1; }, Errc::kProtocol);
  check([](FrameHeader& b) { b.flags = 1u << 5; }, Errc::kProtocol);
  check([](FrameHeader& b) { b.type = 0; }, Errc::kProtocol);
  check([](FrameHeader& b) { b.type = 0x00ff; }, Errc::kProtocol);
  FrameHeader hello = h;
  hello.type = kFrameHello;
  EXPECT_TRUE(validate_header(hello).ok());
}

TEST(StreamDecoder, DecodesFramesSplitAtRandomPoints) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937_64 rng(seed);
  std::vector<std::byte> stream;
  std::vector<Frame> sent;
  for (std::uint64_t i = 0; i < 300; ++i) {
    std::size_t len = i % 3 == 0 ? 0 : rng() % (kMaxPayload + 1);
    sent.push_back(frame_with_payload(i, len));
    auto w = wire(sent.back());
    stream.insert(stream.end(), w.begin(), w.end());
  }
  StreamDecoder d;
  std::vector<Frame> got;
  std::size_t pos = 0;
  while (pos < stream.size()) {
    std::size_t n = std::min<std::size_t>(stream.size() - pos, rng() % 9000 + 1);
    ASSERT_TRUE(d.feed(std::span(stream).subspan(pos, n), [&](Frame&& f) { got.push_back(std::move(f)); }).ok());
    pos += n;
  }
  EXPECT_FALSE(d.mid_frame());
  ASSERT_EQ(got.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(&got[i].header, &sent[i].header, sizeof(FrameHeader))) << i;
    ASSERT_TRUE(std::ranges::equal(got[i].payload.bytes(), sent[i].payload.bytes())) << i;
  }
}

TEST(StreamDecoder, ReportsMidFrame) {
  auto w = wire(frame_with_payload(1, 100));
  StreamDecoder d;
  int frames = 0;
  ASSERT_TRUE(d.feed(std::span(w).first(10), [&](Frame&&) { ++frames; }).ok());
  EXPECT_TRUE(d.mid_frame());
  ASSERT_TRUE(d.feed(std::span(w).subspan(10, kHeaderSize), [&](Frame&&) { ++frames; }).ok());
  EXPECT_TRUE(d.mid_frame());  // inside the payload
  ASSERT_TRUE(d.feed(std::span(w).subspan(10 + kHeaderSize), [&](Frame&&) { ++frames; }).ok());
  EXPECT_FALSE(d.mid_frame());
  EXPECT_EQ(frames, 1);
}

TEST(StreamDecoder, StaysFailedAfterBadHeader) {
  Frame good = frame_with_payload(1, 0);
  Frame bad = frame_with_payload(1, 0);
  bad.header.version = 9;
  auto w = wire(good);
  auto b = wire(bad);
  w.insert(w.end(), b.begin(), b.end());
  StreamDecoder d;
  int frames = 0;
  auto r = d.feed(w, [&](Frame&&) { ++frames; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVersionMismatch);
  EXPECT_EQ(frames, 1);
  EXPECT_TRUE(d.failed());
  EXPECT_FALSE(d.feed(wire(good), [&](Frame&&) { ++frames; }).ok());
  EXPECT_EQ(frames, 1);
}

}  // namespace
}  // namespace ssi::rdma
