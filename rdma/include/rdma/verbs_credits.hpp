// Credit-based flow control for one verbs connection (both directions),
// kept apart from the verbs calls so it is unit-tested on its own.
//
// Each side posts R + 1 receive buffers for its peer and offers R page
// slots (R = its `my_buffers`). The peer may have at most R data messages
// unreported (one credit each) plus one credit update in flight, so a SEND
// always finds a posted receive (the fake fabric fails hard if it does not).
// - A data message takes one credit and, if it carries a page, the slot
//   (message number mod R) at the receiver; it piggybacks every credit the
//   sender owes back and, if due, the ack of the peer's credit update.
// - The receiver owes a credit for a data message once its buffer is posted
//   again and its slot copied out. When it owes >= R/4 and has no update in
//   flight, it sends a credit-only update (zero bytes + immediate data); the
//   update's own buffer is acknowledged by a bit on the peer's next message.
// Why no deadlock: data needs credits, but updates need none (only "no
// update in flight"), and an update is acked by the first message the peer
// sends after processing it, which it sends whenever it has data or owes.
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.hpp"

namespace ssi::rdma {

// The 32-bit immediate data of every SEND on a verbs connection.
struct VerbsImm {
  std::uint16_t credits = 0;  // data credits returned
  bool page = false;          // the payload is in the receiver's page slot
  bool update = false;        // credit-only message (no bytes)
  bool ack = false;           // acknowledges the receiver's last credit update

  std::uint32_t encode() const;
  // kProtocol for unknown bits or an update carrying a page.
  static Result<VerbsImm> decode(std::uint32_t imm);
};

class CreditWindow {
 public:
  // `my_buffers`: R we offer; `peer_buffers`: R the peer offers (credits).
  CreditWindow(std::uint32_t my_buffers, std::uint32_t peer_buffers);

  // --- sending ---
  bool can_send_data() const { return credits_ > 0; }
  struct Data {
    std::uint32_t slot;  // the peer's page slot (and our staging slot)
    VerbsImm imm;
  };
  // Takes a credit; requires can_send_data().
  Data take_data(bool page);
  // A credit update to send now, if one is due (owed >= threshold, none in
  // flight, or an ack owed while we have nothing else to say).
  std::optional<VerbsImm> take_update();

  // --- receiving ---
  struct Incoming {
    VerbsImm imm;
    std::uint32_t slot = 0;  // data messages: where its page is
  };
  // Applies returned credits and acks; kProtocol if the peer returns more
  // credits than it could owe or acks an update we never sent.
  Result<Incoming> on_receive(std::uint32_t imm);
  // A data message's buffer is posted again and its slot is free.
  void consumed() { ++owed_; }

  std::uint32_t credits() const { return credits_; }
  std::uint32_t owed() const { return owed_; }
  bool update_in_flight() const { return update_in_flight_; }
  std::uint32_t threshold() const { return threshold_; }

 private:
  std::uint32_t my_buffers_;
  std::uint32_t peer_buffers_;
  std::uint32_t threshold_;
  std::uint32_t credits_;            // data messages we may still send
  std::uint32_t owed_ = 0;           // credits we owe the peer
  bool update_in_flight_ = false;    // our update not yet acked
  bool owe_ack_ = false;             // the peer's update not yet acked
  std::uint64_t sent_data_ = 0;      // numbers our data messages (slots)
  std::uint64_t received_data_ = 0;  // numbers the peer's (slots)
};

}  // namespace ssi::rdma
