// A single-producer/single-consumer ring of fixed-size slots living in memory
// shared by two processes (one ring per direction per peer pair).
//
// Layout: a control block whose producer-written and consumer-written words
// sit on separate cache lines, then `slots` slots of [u32 length | record].
// The producer writes a record in place (gathering header + payload straight
// into the slot), then publishes it with a release store of `head`; the
// consumer reads it in place and frees it with a release store of `tail`.
//
// Sleeping: a consumer that found the ring empty announces it in the shared
// block (prepare_sleep), rechecks, and then sleeps on its doorbell; a producer
// rings the doorbell only when the announcement is set (take_sleeping_consumer).
// Both sides put a full fence between their store and their load, so either the
// consumer sees the new record or the producer sees the announcement: no lost
// wake-up. A producer facing a full ring does the mirror image.
//
// ShmRing is a view: it does not own the memory. It keeps the peer's index
// cached locally so the fast path touches the peer's cache line only when the
// cached value says the ring looks empty/full.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>

#include "base/result.hpp"

namespace ssi::rdma {

class ShmRing {
 public:
  struct Layout {
    std::uint32_t slots = 64;         // power of two
    std::uint32_t capacity = 4160;    // largest record in bytes (64 B header + 4 KiB)
  };
  enum class Push { kPushed, kFull, kTooLarge };

  // Bytes of shared memory a ring with this layout occupies (multiple of 64).
  static std::size_t bytes_needed(Layout layout);
  // Formats `memory` as an empty ring (the creating side).
  static Result<ShmRing> create(std::span<std::byte> memory, Layout layout);
  // Validates and attaches to a ring formatted by the peer.
  static Result<ShmRing> attach(std::span<std::byte> memory);

  ShmRing() = default;
  std::uint32_t capacity() const { return capacity_; }
  std::uint32_t slots() const { return slots_; }

  // --- producer side ---
  // Copies the concatenation of `parts` into the next slot.
  Push try_push(std::initializer_list<std::span<const std::byte>> parts);
  bool full();
  // After a push: true if the consumer announced it sleeps (the announcement
  // is consumed: ring its doorbell exactly once).
  bool take_sleeping_consumer();
  // Before sleeping on a full ring: announce, recheck. True = really full,
  // sleep until the consumer rings; false = space appeared, retry now.
  bool prepare_wait_for_space();

  // --- consumer side ---
  // The oldest record, read in place; valid until pop(). Empty optional if
  // the ring is empty; kProtocol if the peer wrote a corrupt length/index.
  Result<std::optional<std::span<const std::byte>>> peek();
  void pop();
  bool empty();
  // After a pop: true if the producer waits for space (consumed, as above).
  bool take_waiting_producer();
  // Before sleeping on an empty ring: announce, recheck. True = really empty.
  bool prepare_sleep();
  // The consumer is awake again (clears its announcement).
  void woke_up();

 private:
  struct Control;
  std::byte* slot(std::uint64_t seq) const;

  Control* ctl_ = nullptr;
  std::byte* slots_base_ = nullptr;
  std::uint32_t slots_ = 0;
  std::uint32_t capacity_ = 0;
  std::uint32_t slot_bytes_ = 0;
  // Process-local caches of the shared indices.
  std::uint64_t head_ = 0;         // producer: next seq to write; consumer: last seen head
  std::uint64_t tail_ = 0;         // consumer: next seq to read; producer: last seen tail
};

}  // namespace ssi::rdma
