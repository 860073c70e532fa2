#include "rdma/verbs_credits.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace ssi::rdma {
namespace {
constexpr std::uint32_t kPageBit = 1u << 16;
constexpr std::uint32_t kUpdateBit = 1u << 17;
constexpr std::uint32_t kAckBit = 1u << 18;
constexpr std::uint32_t kKnownBits = 0xffffu | kPageBit | kUpdateBit | kAckBit;
}  // namespace

std::uint32_t VerbsImm::encode() const {
  return credits | (page ? kPageBit : 0) | (update ? kUpdateBit : 0) | (ack ? kAckBit : 0);
}

Result<VerbsImm> VerbsImm::decode(std::uint32_t imm) {
  if (imm & ~kKnownBits)
    return make_error(Errc::kProtocol, fmt::format("unknown bits in immediate data {:#010x}", imm));
  VerbsImm v{static_cast<std::uint16_t>(imm & 0xffff), (imm & kPageBit) != 0,
             (imm & kUpdateBit) != 0, (imm & kAckBit) != 0};
  if (v.update && v.page) return make_error(Errc::kProtocol, "a credit update cannot carry a page");
  return v;
}

CreditWindow::CreditWindow(std::uint32_t my_buffers, std::uint32_t peer_buffers)
    : my_buffers_(my_buffers),
      peer_buffers_(peer_buffers),
      threshold_(std::max<std::uint32_t>(1, my_buffers / 4)),
      credits_(peer_buffers) {}

CreditWindow::Data CreditWindow::take_data(bool page) {
  --credits_;
  Data d{static_cast<std::uint32_t>(sent_data_++ % peer_buffers_), {}};
  d.imm.credits = static_cast<std::uint16_t>(owed_);
  d.imm.page = page;
  d.imm.ack = owe_ack_;
  owed_ = 0;
  owe_ack_ = false;
  return d;
}

std::optional<VerbsImm> CreditWindow::take_update() {
  if (update_in_flight_) return std::nullopt;
  // An owed ack alone needs no message: the peer sends its next update only
  // after more data from us, and that data carries the ack.
  if (owed_ < threshold_) return std::nullopt;
  VerbsImm imm;
  imm.update = true;
  imm.credits = static_cast<std::uint16_t>(owed_);
  imm.ack = owe_ack_;
  owed_ = 0;
  owe_ack_ = false;
  update_in_flight_ = true;
  return imm;
}

Result<CreditWindow::Incoming> CreditWindow::on_receive(std::uint32_t raw) {
  SSI_ASSIGN_OR_RETURN(VerbsImm imm, VerbsImm::decode(raw));
  if (credits_ + imm.credits > peer_buffers_)
    return make_error(Errc::kProtocol,
                      fmt::format("peer returned {} credits, we hold {} of {}", imm.credits,
                                  credits_, peer_buffers_));
  if (imm.ack && !update_in_flight_)
    return make_error(Errc::kProtocol, "peer acked a credit update we never sent");
  credits_ += imm.credits;
  if (imm.ack) update_in_flight_ = false;
  Incoming in{imm, 0};
  if (imm.update) {
    owe_ack_ = true;
  } else {
    in.slot = static_cast<std::uint32_t>(received_data_++ % my_buffers_);
  }
  return in;
}

}  // namespace ssi::rdma
