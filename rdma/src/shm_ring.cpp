#include "rdma/shm_ring.hpp"

#include <cstring>
#include <string>

namespace ssi::rdma {

namespace {
constexpr std::uint32_t kRingMagic = 0x474e5253;  // "SRNG"
constexpr std::uint32_t kRingVersion = 1;
constexpr std::size_t kCacheLine = 64;
constexpr std::uint32_t kMaxSlots = 1u << 16;
constexpr std::uint32_t kMaxCapacity = 1u << 20;

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
constexpr std::uint32_t slot_bytes_for(std::uint32_t capacity) {
  return static_cast<std::uint32_t>(round_up(sizeof(std::uint32_t) * 2 + capacity, kCacheLine));
}
}  // namespace

// The shared control block. Words written by different sides never share a
// cache line, or every push would bounce the consumer's line too.
struct ShmRing::Control {
  alignas(kCacheLine) std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t slots;
  std::uint32_t capacity;
  alignas(kCacheLine) std::atomic<std::uint64_t> head;  // producer-owned
  alignas(kCacheLine) std::atomic<std::uint64_t> tail;  // consumer-owned
  alignas(kCacheLine) std::atomic<std::uint32_t> consumer_sleeping;
  alignas(kCacheLine) std::atomic<std::uint32_t> producer_waiting;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "cross-process atomics must be lock-free");
static_assert(sizeof(ShmRing::Layout) == 8);

std::size_t ShmRing::bytes_needed(Layout layout) {
  return round_up(sizeof(Control), kCacheLine) +
         static_cast<std::size_t>(layout.slots) * slot_bytes_for(layout.capacity);
}

Result<ShmRing> ShmRing::create(std::span<std::byte> memory, Layout layout) {
  if (layout.slots == 0 || layout.slots > kMaxSlots || (layout.slots & (layout.slots - 1)) != 0) {
    return make_error(Errc::kInvalidArgument,
                      "shm ring slot count must be a power of two <= 65536, got " +
                          std::to_string(layout.slots));
  }
  if (layout.capacity == 0 || layout.capacity > kMaxCapacity) {
    return make_error(Errc::kInvalidArgument,
                      "shm ring capacity out of range: " + std::to_string(layout.capacity));
  }
  if (memory.size() < bytes_needed(layout) ||
      reinterpret_cast<std::uintptr_t>(memory.data()) % kCacheLine != 0) {
    return make_error(Errc::kInvalidArgument, "shm ring memory too small or misaligned");
  }
  auto* ctl = new (memory.data()) Control{};
  ctl->magic = kRingMagic;
  ctl->version = kRingVersion;
  ctl->slots = layout.slots;
  ctl->capacity = layout.capacity;
  std::atomic_thread_fence(std::memory_order_release);
  return attach(memory);
}

Result<ShmRing> ShmRing::attach(std::span<std::byte> memory) {
  if (memory.size() < sizeof(Control) ||
      reinterpret_cast<std::uintptr_t>(memory.data()) % kCacheLine != 0) {
    return make_error(Errc::kProtocol, "shm ring memory too small or misaligned");
  }
  auto* ctl = reinterpret_cast<Control*>(memory.data());
  if (ctl->magic != kRingMagic || ctl->version != kRingVersion) {
    return make_error(Errc::kVersionMismatch, "shm ring has a wrong magic/version");
  }
  Layout layout{ctl->slots, ctl->capacity};
  if (layout.slots == 0 || layout.slots > kMaxSlots || (layout.slots & (layout.slots - 1)) != 0 ||
      layout.capacity == 0 || layout.capacity > kMaxCapacity ||
      memory.size() < bytes_needed(layout)) {
    return make_error(Errc::kProtocol, "shm ring header describes an invalid layout");
  }
  ShmRing r;
  r.ctl_ = ctl;
  r.slots_base_ = memory.data() + round_up(sizeof(Control), kCacheLine);
  r.slots_ = layout.slots;
  r.capacity_ = layout.capacity;
  r.slot_bytes_ = slot_bytes_for(layout.capacity);
  r.head_ = ctl->head.load(std::memory_order_acquire);
  r.tail_ = ctl->tail.load(std::memory_order_acquire);
  return r;
}

std::byte* ShmRing::slot(std::uint64_t seq) const {
  return slots_base_ + static_cast<std::size_t>(seq & (slots_ - 1)) * slot_bytes_;
}

bool ShmRing::full() {
  if (head_ - tail_ < slots_) return false;
  tail_ = ctl_->tail.load(std::memory_order_acquire);
  return head_ - tail_ >= slots_;
}

ShmRing::Push ShmRing::try_push(std::initializer_list<std::span<const std::byte>> parts) {
  std::size_t total = 0;
  for (auto p : parts) total += p.size();
  if (total > capacity_) return Push::kTooLarge;
  if (full()) return Push::kFull;
  std::byte* s = slot(head_);
  auto len = static_cast<std::uint32_t>(total);
  std::memcpy(s, &len, sizeof len);
  std::byte* out = s + sizeof(std::uint32_t) * 2;
  for (auto p : parts) {
    if (p.empty()) continue;
    std::memcpy(out, p.data(), p.size());
    out += p.size();
  }
  ctl_->head.store(++head_, std::memory_order_release);
  return Push::kPushed;
}

namespace {
// The waker's half of the Dekker handshake: our index store (done by the
// caller) must be ordered before the load of the sleeper's announcement.
bool take_announcement(std::atomic<std::uint32_t>& flag) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (flag.load(std::memory_order_relaxed) == 0) return false;
  return flag.exchange(0, std::memory_order_acq_rel) != 0;
}

// The sleeper's half: announce, then recheck; withdraw if no longer blocked.
template <typename StillBlocked>
bool announce(std::atomic<std::uint32_t>& flag, StillBlocked still_blocked) {
  flag.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (still_blocked()) return true;
  flag.store(0, std::memory_order_relaxed);
  return false;
}
}  // namespace

bool ShmRing::take_sleeping_consumer() { return take_announcement(ctl_->consumer_sleeping); }

bool ShmRing::prepare_wait_for_space() {
  return announce(ctl_->producer_waiting, [this] { return full(); });
}

bool ShmRing::empty() {
  if (head_ != tail_) return false;
  head_ = ctl_->head.load(std::memory_order_acquire);
  return head_ == tail_;
}

Result<std::optional<std::span<const std::byte>>> ShmRing::peek() {
  if (empty()) return std::optional<std::span<const std::byte>>{};
  if (head_ - tail_ > slots_) {
    return make_error(Errc::kProtocol, "shm ring indices corrupt: head " + std::to_string(head_) +
                                           " tail " + std::to_string(tail_));
  }
  const std::byte* s = slot(tail_);
  std::uint32_t len = 0;
  std::memcpy(&len, s, sizeof len);  // read once: the peer could rewrite it
  if (len > capacity_) {
    return make_error(Errc::kProtocol, "shm ring record length " + std::to_string(len) +
                                           " exceeds capacity " + std::to_string(capacity_));
  }
  return std::optional(std::span<const std::byte>(s + sizeof(std::uint32_t) * 2, len));
}

void ShmRing::pop() { ctl_->tail.store(++tail_, std::memory_order_release); }

bool ShmRing::take_waiting_producer() { return take_announcement(ctl_->producer_waiting); }

bool ShmRing::prepare_sleep() {
  return announce(ctl_->consumer_sleeping, [this] { return empty(); });
}

void ShmRing::woke_up() { ctl_->consumer_sleeping.store(0, std::memory_order_relaxed); }

}  // namespace ssi::rdma
