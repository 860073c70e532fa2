// libFuzzer target for the tcp stream decoder. Oracle: decoding the input in
// one piece and in fuzzer-chosen chunks must give the same frames and the
// same verdict; every frame yielded must pass validate_header() and carry
// exactly payload_len bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "rdma/codec.hpp"

using namespace ssi::rdma;

namespace {

struct Outcome {
  std::vector<std::vector<std::byte>> frames;  // header + payload bytes
  bool failed = false;
};

void check(bool cond) {
  if (!cond) std::abort();
}

void on_frame(Outcome& out, Frame&& f) {
  check(validate_header(f.header).ok());
  check(f.payload.size() == f.header.payload_len);
  auto h = encode_header(f.header);
  std::vector<std::byte> bytes(h.begin(), h.end());
  auto p = f.payload.bytes();
  bytes.insert(bytes.end(), p.begin(), p.end());
  out.frames.push_back(std::move(bytes));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // First byte picks the chunk size for the split run (1..256 bytes).
  const std::size_t chunk = std::size_t{data[0]} + 1;
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  Outcome whole;
  StreamDecoder d1;
  whole.failed = !d1.feed(input, [&](Frame&& f) { on_frame(whole, std::move(f)); }).ok();

  Outcome split;
  StreamDecoder d2;
  for (std::size_t pos = 0; pos < input.size() && !split.failed; pos += chunk) {
    auto piece = input.subspan(pos, std::min(chunk, input.size() - pos));
    split.failed = !d2.feed(piece, [&](Frame&& f) { on_frame(split, std::move(f)); }).ok();
  }
  check(whole.failed == split.failed);
  check(whole.frames == split.frames);
  // The yielded frames re-encode to exactly the bytes they came from.
  std::size_t pos = 0;
  for (auto& f : whole.frames) {
    check(pos + f.size() <= input.size());
    check(std::memcmp(f.data(), input.data() + pos, f.size()) == 0);
    pos += f.size();
  }
  // A failed decoder stays failed.
  if (whole.failed) check(!d1.feed(input.first(0), [](Frame&&) {}).ok());
  return 0;
}
