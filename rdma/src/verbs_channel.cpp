#include "verbs_channel.hpp"

#include <fmt/format.h>

#include <cstring>

namespace ssi::rdma {
namespace {

struct NoLock {  // everything runs on the reactor thread
  void lock() {}
  void unlock() {}
};

constexpr std::uint32_t kMaxBuffers = 0xffff;  // credits travel in 16 bits

}  // namespace

Result<std::unique_ptr<VerbsChannel>> VerbsChannel::create(VerbsFabric& fabric, RegistrationTable& table,
                                                           std::uint32_t conn, NodeId self, NodeId peer,
                                                           std::uint32_t buffers) {
  if (buffers < 2 || buffers > kMaxBuffers)
    return make_error(Errc::kInvalidArgument, fmt::format("verbs: {} buffers per peer (2..{})", buffers, kMaxBuffers));
  std::unique_ptr<VerbsChannel> ch(new VerbsChannel(fabric, table, conn, self, peer, buffers));
  SSI_TRY(ch->allocate(ch->local_, (2 * buffers + 1) * kVerbsRecvSize + buffers * kVerbsSlotSize));
  SSI_TRY(ch->allocate(ch->slots_, buffers * kVerbsSlotSize));
  // Sends: at most R data messages of two work requests each and one
  // update are unacknowledged by credits; twice that covers send queue
  // entries whose completions we have not polled yet.
  SSI_ASSIGN_OR_RETURN(ch->qp_, fabric.create_qp(4 * buffers + 4, buffers + 1));
  for (std::uint32_t i = 0; i <= buffers; ++i) SSI_TRY(ch->post_recv(i));
  return ch;
}

VerbsChannel::~VerbsChannel() {
  qp_.reset();  // first: the NIC stops touching the buffers
  if (local_.bytes) (void)table_.remove(local_.bytes.get());
  if (slots_.bytes) (void)table_.remove(slots_.bytes.get());
}

Result<void> VerbsChannel::allocate(Buffer& b, std::size_t size) {
  b.bytes = std::make_unique<std::byte[]>(size);
  b.size = size;
  auto keys = table_.add(std::span(b.bytes.get(), size));
  if (!keys.ok()) {
    b.bytes.reset();
    return Error{keys.error().code, "verbs: registering connection buffers: " + keys.error().message,
                 keys.error().sys_errno};
  }
  b.keys = *keys;
  return ok();
}

VerbsConnInfo VerbsChannel::local_info() const {
  VerbsConnInfo info = qp_->local_info();
  info.rkey = slots_.keys.rkey;
  info.addr = reinterpret_cast<std::uint64_t>(slots_.bytes.get());
  info.length = slots_.size;
  return info;
}

Result<void> VerbsChannel::connect(const VerbsConnInfo& remote) {
  if (remote.length % kVerbsSlotSize != 0 || remote.length / kVerbsSlotSize < 2 ||
      remote.length / kVerbsSlotSize > kMaxBuffers)
    return make_error(Errc::kProtocol, fmt::format("node {} offers a page area of {} bytes: not 2..{} pages",
                                                   peer_, remote.length, kMaxBuffers));
  remote_ = remote;
  window_.emplace(buffers_, static_cast<std::uint32_t>(remote.length / kVerbsSlotSize));
  if (auto r = qp_->connect(remote); !r.ok())
    return Error{r.error().code, fmt::format("verbs QP to node {}: {}", peer_, r.error().message), r.error().sys_errno};
  return ok();
}

Result<void> VerbsChannel::post_recv(std::uint32_t i) {
  return qp_->post_recv(make_wr_id(conn_, WrKind::kRecv, i),
                        LocalBuf{recv_buf(i), kVerbsRecvSize, local_.keys.lkey});
}

Result<void> VerbsChannel::wait_for_credit(std::chrono::milliseconds stall) {
  NoLock lock;
  if (!changed_.wait_for(lock, stall, [&] { return closed() || window_->can_send_data(); }))
    return make_error(Errc::kTimeout,
                      fmt::format("node {} returned no receive credit for {} ms", peer_, stall.count()));
  if (closed()) return *error_;
  return ok();
}

Result<void> VerbsChannel::send(const Frame& frame, std::chrono::milliseconds stall) {
  if (closed()) return *error_;
  if (!window_) return make_error(Errc::kInternal, fmt::format("verbs: send to node {} before connect", peer_));
  SSI_TRY(wait_for_credit(stall));
  auto payload = frame.payload.bytes();
  const bool page = payload.size() > kVerbsInline;
  const CreditWindow::Data d = window_->take_data(page);
  std::byte* head = send_buf(d.slot);
  auto header = encode_header(frame.header);
  std::memcpy(head, header.data(), header.size());
  LocalBuf sge{head, static_cast<std::uint32_t>(kHeaderSize), local_.keys.lkey};
  std::optional<std::uint32_t> token;
  if (!page) {
    if (!payload.empty()) std::memcpy(head + kHeaderSize, payload.data(), payload.size());
    sge.length += static_cast<std::uint32_t>(payload.size());
  } else {
    const std::uint64_t remote = remote_.addr + std::uint64_t{d.slot} * kVerbsSlotSize;
    const auto len = static_cast<std::uint32_t>(payload.size());
    Result<void> posted;
    if (auto keys = table_.find(payload.data(), payload.size()); keys.ok()) {
      // Registered memory (e.g. guest RAM): the NIC reads it in place.
      token = next_token_++ & 0xffffff;
      zero_copy_[*token];
      LocalBuf src{const_cast<std::byte*>(payload.data()), len, keys->lkey};
      posted = qp_->post_write(make_wr_id(conn_, WrKind::kZeroCopyWrite, *token), src, remote, remote_.rkey, true);
    } else {
      // Free again once the peer returns this slot's credit.
      std::memcpy(stage_page(d.slot), payload.data(), payload.size());
      LocalBuf src{stage_page(d.slot), len, local_.keys.lkey};
      posted = qp_->post_write(make_wr_id(conn_, WrKind::kStagedWrite, d.slot), src, remote, remote_.rkey, false);
    }
    if (!posted.ok()) return posted;
  }
  SSI_TRY(qp_->post_send(make_wr_id(conn_, WrKind::kSend, d.slot), std::span(&sge, 1), d.imm.encode(), true));
  if (!token) return ok();
  NoLock lock;
  changed_.wait(lock, [&] { return closed() || zero_copy_.at(*token).has_value(); });
  if (closed()) return *error_;
  WcStatus s = *zero_copy_.at(*token);
  zero_copy_.erase(*token);
  if (s != WcStatus::kSuccess) return failure("RDMA WRITE of a page", s);
  return ok();
}

Result<void> VerbsChannel::send_raw(std::span<const std::byte> bytes) {
  if (closed()) return *error_;
  if (bytes.size() > kVerbsRecvSize)
    return make_error(Errc::kInvalidArgument, fmt::format("raw message of {} bytes > {}", bytes.size(), kVerbsRecvSize));
  SSI_TRY(wait_for_credit(std::chrono::seconds(5)));
  const CreditWindow::Data d = window_->take_data(false);
  std::memcpy(send_buf(d.slot), bytes.data(), bytes.size());
  LocalBuf sge{send_buf(d.slot), static_cast<std::uint32_t>(bytes.size()), local_.keys.lkey};
  return qp_->post_send(make_wr_id(conn_, WrKind::kSend, d.slot), std::span(&sge, 1), d.imm.encode(), true);
}

Error VerbsChannel::failure(std::string what, WcStatus s) const {
  Errc code = s == WcStatus::kRemoteAccess || s == WcStatus::kLocalProtection ||
                      s == WcStatus::kLocalLength || s == WcStatus::kRemoteInvalidRequest
                  ? Errc::kProtocol
                  : Errc::kDisconnected;
  return make_error(code, fmt::format("verbs {} with node {} failed: {}", what, peer_, wc_status_name(s)));
}

Result<void> VerbsChannel::on_completion(const Completion& c, const DeliverFn& deliver) {
  if (closed()) return ok();  // the flush of a connection already dropped
  const auto kind = static_cast<WrKind>((c.wr_id >> 24) & 0xff);
  switch (kind) {
    case WrKind::kRecv:
      return on_receive(c, deliver);
    case WrKind::kZeroCopyWrite:
      if (auto it = zero_copy_.find(c.wr_id & 0xffffff); it != zero_copy_.end()) {
        it->second = c.status;
        changed_.notify_all();
      }
      break;
    case WrKind::kSend:
    case WrKind::kUpdate:
    case WrKind::kStagedWrite:
      break;
    default:
      return make_error(Errc::kInternal, fmt::format("verbs: completion with unknown wr_id {:#x}", c.wr_id));
  }
  if (c.status != WcStatus::kSuccess)
    return failure(kind == WrKind::kSend || kind == WrKind::kUpdate ? "SEND" : "RDMA WRITE", c.status);
  return ok();
}

Result<void> VerbsChannel::on_receive(const Completion& c, const DeliverFn& deliver) {
  if (c.status != WcStatus::kSuccess) return failure("receive", c.status);
  const auto index = static_cast<std::uint32_t>(c.wr_id & 0xffffff);
  if (index > buffers_) return make_error(Errc::kInternal, fmt::format("verbs: receive buffer {} of {}", index, buffers_));
  if (!c.imm) return make_error(Errc::kProtocol, fmt::format("node {} sent a message without immediate data", peer_));
  if (!window_) return make_error(Errc::kProtocol, fmt::format("node {} sent before the handshake ended", peer_));
  SSI_ASSIGN_OR_RETURN(CreditWindow::Incoming in, window_->on_receive(*c.imm));
  std::optional<Frame> frame;
  if (in.imm.update) {
    if (c.byte_len != 0)
      return make_error(Errc::kProtocol, fmt::format("node {} sent a credit update of {} bytes", peer_, c.byte_len));
  } else {
    SSI_ASSIGN_OR_RETURN(frame, parse(c, in.imm, in.slot));
  }
  // The buffer (and the slot, copied out by parse) is free for the peer again.
  SSI_TRY(post_recv(index));
  if (frame) {
    window_->consumed();
    deliver(std::move(*frame));
  }
  SSI_TRY(maybe_update());
  changed_.notify_all();  // credits may have come back
  return ok();
}

Result<Frame> VerbsChannel::parse(const Completion& c, const VerbsImm& imm, std::uint32_t slot) {
  auto bad = [&](std::string what) { return make_error(Errc::kProtocol, fmt::format("node {} sent {}", peer_, what)); };
  if (c.byte_len < kHeaderSize) return bad(fmt::format("a message of {} bytes, shorter than a frame header", c.byte_len));
  Frame f;
  f.header = decode_header(std::span<const std::byte, kHeaderSize>(recv_buf(c.wr_id & 0xffffff), kHeaderSize));
  const FrameHeader& h = f.header;
  if (auto v = validate_header(h); !v.ok())
    return Error{v.error().code, fmt::format("node {} sent a bad frame: {}", peer_, v.error().message)};
  if (h.type == kFrameHello) return bad("a hello on an established connection");
  if (h.src != peer_.value() || h.dst != self_.value())
    return bad(fmt::format("a frame {} -> {} on its own connection to node {}", h.src, h.dst, self_));
  if (imm.page) {
    if (c.byte_len != kHeaderSize || h.payload_len <= kVerbsInline)
      return bad(fmt::format("a page frame of {} bytes with payload_len {}", c.byte_len, h.payload_len));
    f.payload = Payload::copy_of(std::span(slots_.bytes.get() + std::size_t{slot} * kVerbsSlotSize, h.payload_len));
  } else {
    if (h.payload_len > kVerbsInline || c.byte_len != kHeaderSize + h.payload_len)
      return bad(fmt::format("a message of {} bytes whose header announces {} payload bytes", c.byte_len, h.payload_len));
    if (h.payload_len > 0)
      f.payload = Payload::copy_of(std::span(recv_buf(c.wr_id & 0xffffff) + kHeaderSize, h.payload_len));
  }
  return f;
}

Result<void> VerbsChannel::maybe_update() {
  auto imm = window_->take_update();
  if (!imm) return ok();
  return qp_->post_send(make_wr_id(conn_, WrKind::kUpdate, 0), {}, imm->encode(), true);
}

void VerbsChannel::close(const Error& why) {
  if (closed()) return;
  error_ = why;
  qp_.reset();
  changed_.notify_all();
}

}  // namespace ssi::rdma
