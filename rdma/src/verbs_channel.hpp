// One verbs connection's data path (one RC QP to one peer), independent of
// how the connection was set up:
// - R + 1 receive buffers of a header + kVerbsInline bytes stay posted;
// - R page slots of 4 KiB, remote-writable, advertised in the conn info;
// - frames with at most kVerbsInline payload bytes go as one SEND (header
//   and payload from a staging buffer); bigger payloads are RDMA-written
//   into the peer's slot first (from the caller's memory when it lies in a
//   region registered with the transport, else from a staging page), then a
//   SEND carries the header; RC order makes the page visible first;
// - every SEND carries VerbsImm: credits returned (CreditWindow), page bit.
// Reactor thread only. Errors from on_completion()/send() mean the
// connection is finished: the owner drops it.
#pragma once

#include <boost/fiber/condition_variable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

#include "base/ids.hpp"
#include "rdma/codec.hpp"
#include "rdma/frame.hpp"
#include "rdma/verbs_credits.hpp"
#include "rdma/verbs_fabric.hpp"

namespace ssi::rdma {

inline constexpr std::size_t kVerbsInline = 256;
inline constexpr std::size_t kVerbsRecvSize = kHeaderSize + kVerbsInline;
inline constexpr std::size_t kVerbsSlotSize = kMaxPayload;

// wr_id = conn id (32 bits) | kind (8) | index (24): completions are routed
// to their connection, and those of a dropped connection are ignored.
enum class WrKind : std::uint8_t { kRecv = 1, kSend, kUpdate, kZeroCopyWrite, kStagedWrite };
inline std::uint64_t make_wr_id(std::uint32_t conn, WrKind kind, std::uint32_t index) {
  return std::uint64_t{conn} << 32 | std::uint64_t{static_cast<std::uint8_t>(kind)} << 24 | (index & 0xffffff);
}
inline std::uint32_t wr_conn(std::uint64_t wr_id) { return static_cast<std::uint32_t>(wr_id >> 32); }

class VerbsChannel {
 public:
  using DeliverFn = std::function<void(Frame&&)>;

  // Creates the QP, registers and posts the buffers. `table` also holds
  // the regions pages may be written from without a copy.
  static Result<std::unique_ptr<VerbsChannel>> create(VerbsFabric& fabric, RegistrationTable& table,
                                                      std::uint32_t conn, NodeId self, NodeId peer,
                                                      std::uint32_t buffers);
  ~VerbsChannel();
  VerbsChannel(const VerbsChannel&) = delete;
  VerbsChannel& operator=(const VerbsChannel&) = delete;

  std::uint32_t conn() const { return conn_; }
  std::uint32_t qpn() const { return qp_ ? qp_->qpn() : 0; }
  NodeId peer() const { return peer_; }
  // QP info + our slot area (rkey, address, length = R pages).
  VerbsConnInfo local_info() const;
  // Checks the peer's slot area and brings the QP to RTS.
  Result<void> connect(const VerbsConnInfo& remote);
  // Suspends while the peer has no credit for us (at most `stall`); a page
  // sent without a copy also waits for its RDMA WRITE to complete, so the
  // caller's borrowed memory is free again when this returns.
  Result<void> send(const Frame& frame, std::chrono::milliseconds stall);
  // Tests: `bytes` as one data SEND (header + inline part), as a buggy or
  // hostile peer would send them.
  Result<void> send_raw(std::span<const std::byte> bytes);
  Result<void> on_completion(const Completion& c, const DeliverFn& deliver);
  // Destroys the QP (nothing more is sent or written) and fails waiters.
  void close(const Error& why);
  bool closed() const { return error_.has_value(); }
  const CreditWindow* window() const { return window_ ? &*window_ : nullptr; }

 private:
  struct Buffer {
    std::unique_ptr<std::byte[]> bytes;
    std::size_t size = 0;
    MemoryKeys keys;
  };
  VerbsChannel(VerbsFabric& fabric, RegistrationTable& table, std::uint32_t conn, NodeId self,
               NodeId peer, std::uint32_t buffers)
      : fabric_(fabric), table_(table), conn_(conn), self_(self), peer_(peer), buffers_(buffers) {}
  Result<void> allocate(Buffer& b, std::size_t size);
  std::byte* recv_buf(std::uint32_t i) { return local_.bytes.get() + i * kVerbsRecvSize; }
  std::byte* send_buf(std::uint32_t i) { return recv_buf(buffers_ + 1) + i * kVerbsRecvSize; }
  std::byte* stage_page(std::uint32_t i) { return send_buf(buffers_) + i * kVerbsSlotSize; }
  Result<void> post_recv(std::uint32_t i);
  Result<void> on_receive(const Completion& c, const DeliverFn& deliver);
  Result<Frame> parse(const Completion& c, const VerbsImm& imm, std::uint32_t slot);
  Result<void> maybe_update();
  Result<void> wait_for_credit(std::chrono::milliseconds stall);
  Error failure(std::string what, WcStatus s) const;

  VerbsFabric& fabric_;
  RegistrationTable& table_;
  std::uint32_t conn_;
  NodeId self_, peer_;
  std::uint32_t buffers_;  // R
  std::unique_ptr<VerbsQp> qp_;
  Buffer local_;  // receive buffers, send staging, page staging
  Buffer slots_;  // R pages the peer writes into
  VerbsConnInfo remote_;
  std::optional<CreditWindow> window_;
  std::optional<Error> error_;
  std::uint32_t next_token_ = 0;
  std::unordered_map<std::uint32_t, std::optional<WcStatus>> zero_copy_;  // WRITEs awaited
  boost::fibers::condition_variable_any changed_;  // credits, zero-copy completions, close
};

}  // namespace ssi::rdma
