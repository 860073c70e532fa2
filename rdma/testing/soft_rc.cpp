#include "rdma/soft_rc.hpp"

#include <sys/eventfd.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace ssi::rdma::testing {

enum class WrKind { kSend, kWrite, kRead };

struct SoftWr {
  WrKind kind;
  std::uint64_t wr_id;
  std::vector<LocalBuf> sges;
  std::optional<std::uint32_t> imm;
  bool signaled;
  std::uint64_t remote_addr = 0;
  std::uint32_t rkey = 0;
};

class SoftRcQp final : public VerbsQp {
 public:
  enum class State { kInit, kRts, kError };

  SoftRcQp(SoftRcFabric& fabric, std::uint32_t qpn, std::uint32_t max_send, std::uint32_t max_recv)
      : fabric_(&fabric), qpn_(qpn), max_send_(max_send), max_recv_(max_recv) {}
  ~SoftRcQp() override { detach(); }

  std::uint32_t qpn() const override { return qpn_; }
  VerbsConnInfo local_info() const override {
    VerbsConnInfo info;
    info.lid = 1;
    info.qpn = qpn_;
    info.mtu = 4096;
    return info;
  }
  Result<void> connect(const VerbsConnInfo& remote) override {
    if (state_ != State::kInit) return make_error(Errc::kInvalidArgument, "soft QP: connect twice");
    remote_qpn_ = remote.qpn;
    state_ = State::kRts;
    return ok();
  }
  Result<void> post_recv(std::uint64_t wr_id, LocalBuf buf) override {
    if (!fabric_) return Error::from_errno("soft QP: post_recv on a destroyed NIC", ENODEV);
    if (recvs_.size() >= max_recv_) return Error::from_errno("soft QP: receive queue full", ENOMEM);
    recvs_.push_back({wr_id, buf});
    if (state_ == State::kError) flush();
    return ok();
  }
  Result<void> post_send(std::uint64_t wr_id, std::span<const LocalBuf> sges,
                         std::optional<std::uint32_t> imm, bool signaled) override {
    return post({WrKind::kSend, wr_id, {sges.begin(), sges.end()}, imm, signaled});
  }
  Result<void> post_write(std::uint64_t wr_id, LocalBuf local, std::uint64_t remote_addr,
                          std::uint32_t rkey, bool signaled) override {
    return post({WrKind::kWrite, wr_id, {local}, std::nullopt, signaled, remote_addr, rkey});
  }
  Result<void> post_read(std::uint64_t wr_id, LocalBuf local, std::uint64_t remote_addr,
                         std::uint32_t rkey) override {
    return post({WrKind::kRead, wr_id, {local}, std::nullopt, true, remote_addr, rkey});
  }

  // Runs every queued work request (the NIC at work).
  void execute() {
    while (!sends_.empty() && fabric_) {
      SoftWr wr = std::move(sends_.front());
      sends_.pop_front();
      if (state_ == State::kError) {
        fabric_->complete(done(wr, WcStatus::kFlushed));
        continue;
      }
      WcStatus s = run(wr);
      if (s != WcStatus::kSuccess) {
        fabric_->complete(done(wr, s));
        fail();
      } else if (wr.signaled) {
        fabric_->complete(done(wr, s));
      }
    }
  }

  // To the error state: everything outstanding completes kFlushed.
  void fail() {
    state_ = State::kError;
    flush();
  }

  void detach() {
    if (!fabric_) return;
    fabric_->net_.qps_.erase(qpn_);
    fabric_->qps_.erase(qpn_);
    fabric_ = nullptr;
  }

 private:
  struct Recv {
    std::uint64_t wr_id;
    LocalBuf buf;
  };

  Result<void> post(SoftWr wr) {
    if (!fabric_) return Error::from_errno("soft QP: post on a destroyed NIC", ENODEV);
    if (state_ == State::kInit) return Error::from_errno("soft QP: post_send before RTS", EINVAL);
    if (sends_.size() >= max_send_) return Error::from_errno("soft QP: send queue full", ENOMEM);
    sends_.push_back(std::move(wr));
    fabric_->ring();  // the doorbell: the NIC runs it at the next poll
    return ok();
  }

  Completion done(const SoftWr& wr, WcStatus s) const {
    Completion c;
    c.wr_id = wr.wr_id;
    c.status = s;
    c.qp_num = qpn_;
    c.opcode = wr.kind == WrKind::kSend    ? WcOpcode::kSend
               : wr.kind == WrKind::kWrite ? WcOpcode::kRdmaWrite
                                           : WcOpcode::kRdmaRead;
    return c;
  }

  void flush() {
    if (!fabric_) return;
    for (auto& r : recvs_) {
      Completion c;
      c.wr_id = r.wr_id;
      c.status = WcStatus::kFlushed;
      c.opcode = WcOpcode::kRecv;
      c.qp_num = qpn_;
      fabric_->complete(c);
    }
    recvs_.clear();
    for (auto& wr : sends_) fabric_->complete(done(wr, WcStatus::kFlushed));
    sends_.clear();
  }

  WcStatus run(const SoftWr& wr) {
    auto it = fabric_->net_.qps_.find(remote_qpn_);
    if (it == fabric_->net_.qps_.end()) return WcStatus::kRetryExceeded;
    SoftRcQp* peer = it->second;
    if (peer->state_ != State::kRts || peer->fabric_->dead_ || peer->remote_qpn_ != qpn_)
      return WcStatus::kRetryExceeded;
    std::size_t total = 0;
    for (const LocalBuf& b : wr.sges) {
      if (b.length > 0 && !fabric_->covers(b.lkey, b.addr, b.length)) return WcStatus::kLocalProtection;
      total += b.length;
    }
    if (wr.kind == WrKind::kSend) return deliver_send(wr, *peer, total);
    const LocalBuf& local = wr.sges.front();
    auto* remote = reinterpret_cast<std::byte*>(wr.remote_addr);
    if (!peer->fabric_->covers_remote(wr.rkey, remote, local.length)) {
      peer->fail();  // the responder detected the violation too
      return WcStatus::kRemoteAccess;
    }
    if (wr.kind == WrKind::kWrite) {
      std::memmove(remote, local.addr, local.length);
      ++fabric_->net_.writes_;
      fabric_->net_.last_write_source_ = local.addr;
    } else {
      std::memmove(local.addr, remote, local.length);
    }
    return WcStatus::kSuccess;
  }

  WcStatus deliver_send(const SoftWr& wr, SoftRcQp& peer, std::size_t total) {
    if (peer.recvs_.empty()) return WcStatus::kRnrRetryExceeded;
    Recv r = peer.recvs_.front();
    peer.recvs_.pop_front();
    Completion c;
    c.wr_id = r.wr_id;
    c.opcode = WcOpcode::kRecv;
    c.qp_num = peer.qpn_;
    bool covered = r.buf.length == 0 || peer.fabric_->covers(r.buf.lkey, r.buf.addr, r.buf.length);
    if (total > r.buf.length || !covered) {
      c.status = covered ? WcStatus::kLocalLength : WcStatus::kLocalProtection;
      peer.fabric_->complete(c);
      peer.fail();
      return WcStatus::kRemoteInvalidRequest;
    }
    std::size_t at = 0;
    for (const LocalBuf& b : wr.sges) {
      std::memmove(r.buf.addr + at, b.addr, b.length);
      at += b.length;
    }
    c.byte_len = static_cast<std::uint32_t>(total);
    c.imm = wr.imm;
    peer.fabric_->complete(c);
    ++fabric_->net_.sends_;
    return WcStatus::kSuccess;
  }

  SoftRcFabric* fabric_;
  std::uint32_t qpn_;
  std::uint32_t max_send_, max_recv_;
  std::uint32_t remote_qpn_ = 0;
  State state_ = State::kInit;
  std::deque<Recv> recvs_;
  std::deque<SoftWr> sends_;
};

Result<std::unique_ptr<SoftRcFabric>> SoftRcNetwork::make_fabric(std::string name, std::uint32_t cq_depth) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return Error::from_errno("eventfd for a soft RC completion channel");
  return std::unique_ptr<SoftRcFabric>(new SoftRcFabric(*this, std::move(name), cq_depth, std::move(fd)));
}

bool SoftRcNetwork::fail_qp(std::uint32_t qpn) {
  auto it = qps_.find(qpn);
  if (it == qps_.end()) return false;
  it->second->fail();
  return true;
}

void SoftRcNetwork::kill(SoftRcFabric& fabric) {
  fabric.dead_ = true;
  for (auto& [qpn, qp] : fabric.qps_) qp->fail();
}

SoftRcFabric::~SoftRcFabric() {
  // QPs outliving their NIC fail every later call instead of dangling.
  for (auto& [qpn, qp] : std::map(qps_)) qp->detach();
}

Result<std::unique_ptr<VerbsQp>> SoftRcFabric::create_qp(std::uint32_t max_send, std::uint32_t max_recv) {
  if (dead_) return Error::from_errno("soft RC: create_qp on a dead NIC", ENODEV);
  std::uint32_t qpn = net_.next_qpn_++ & 0xffffff;
  auto qp = std::make_unique<SoftRcQp>(*this, qpn, max_send, max_recv);
  net_.qps_[qpn] = qp.get();
  qps_[qpn] = qp.get();
  return std::unique_ptr<VerbsQp>(std::move(qp));
}

Result<void> SoftRcFabric::consume_event() {
  std::uint64_t v;
  if (::read(event_.get(), &v, sizeof v) < 0 && errno != EAGAIN)
    return Error::from_errno("soft RC: reading the completion channel");
  return ok();
}

Result<void> SoftRcFabric::arm() {
  armed_ = true;
  return ok();
}

void SoftRcFabric::ring() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(event_.get(), &one, sizeof one);
}

void SoftRcFabric::complete(Completion c) {
  if (cq_.size() >= cq_depth_) {
    overrun_ = true;  // a real CQ overrun is an asynchronous fatal error
    return;
  }
  cq_.push_back(c);
  if (armed_) {
    armed_ = false;
    ring();
  }
}

void SoftRcFabric::execute_posted() {
  if (dead_) return;
  // A QP's execution may destroy nothing, but copy the list: completions
  // never create or remove QPs, while the order by qpn keeps runs repeatable.
  for (auto& [qpn, qp] : std::map(qps_)) qp->execute();
}

Result<std::size_t> SoftRcFabric::poll(std::span<Completion> out) {
  execute_posted();
  if (overrun_) return make_error(Errc::kInternal, fmt::format("soft RC {}: CQ overrun (depth {})", name_, cq_depth_));
  std::size_t n = 0;
  while (n < out.size() && !cq_.empty()) {
    out[n++] = cq_.front();
    cq_.pop_front();
  }
  return n;
}

Result<MemoryRegistrar::Registration> SoftRcFabric::register_region(std::span<std::byte> region) {
  std::uint32_t key = net_.next_key_++;
  std::uintptr_t handle = next_handle_++;
  regions_[handle] = Region{reinterpret_cast<std::uintptr_t>(region.data()), region.size(), key};
  return Registration{{key, key}, handle};
}

void SoftRcFabric::deregister(std::uintptr_t handle) { regions_.erase(handle); }

bool SoftRcFabric::covers(std::uint32_t key, const void* addr, std::size_t len) const {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  for (const auto& [h, r] : regions_)
    if (r.key == key && a >= r.base && a - r.base <= r.length && len <= r.length - (a - r.base)) return true;
  return false;
}

}  // namespace ssi::rdma::testing
