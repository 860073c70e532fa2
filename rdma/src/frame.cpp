#include "rdma/frame.hpp"

#include <cstring>

namespace ssi::rdma {

void Payload::Deleter::operator()(std::byte* p) const { delete[] p; }

Payload Payload::borrow(std::span<const std::byte> bytes) {
  Payload p;
  p.borrowed_ = bytes.data();
  p.size_ = bytes.size();
  return p;
}

Payload Payload::allocate(std::size_t size) {
  Payload p;
  p.owned_.reset(new std::byte[size]());
  p.size_ = size;
  return p;
}

Payload Payload::allocate_for_overwrite(std::size_t size) {
  Payload p;
  p.owned_.reset(new std::byte[size]);
  p.size_ = size;
  return p;
}

Payload Payload::copy_of(std::span<const std::byte> bytes) {
  Payload p = allocate_for_overwrite(bytes.size());
  if (!bytes.empty()) std::memcpy(p.owned_.get(), bytes.data(), bytes.size());
  return p;
}

std::span<const std::byte> Payload::bytes() const {
  return {owned_ ? owned_.get() : borrowed_, size_};
}

std::span<std::byte> Payload::mutable_bytes() {
  if (!owned_) return {};
  return {owned_.get(), size_};
}

Payload Payload::to_owned() && {
  if (owned_ || size_ == 0) return std::move(*this);
  return copy_of(bytes());
}

Frame Frame::make(FrameType type, std::uint64_t arg0, std::uint64_t arg1, std::uint64_t arg2,
                  std::uint64_t arg3) {
  Frame f;
  f.header.type = type;
  f.header.arg0 = arg0;
  f.header.arg1 = arg1;
  f.header.arg2 = arg2;
  f.header.arg3 = arg3;
  return f;
}

}  // namespace ssi::rdma
