// The few verbs operations the verbs transport needs, behind an interface:
// a "fabric" is one NIC context (protection domain + one completion queue
// with its completion channel), a VerbsQp one RC queue pair on it.
// make_ibv_fabric() is the real thing over libibverbs (verbs_device.hpp);
// testing/rdma/soft_rc.hpp is an in-process fake with the same semantics,
// so the transport's data path runs in tests on machines without a NIC.
//
// Semantics both implementations keep (those of RC verbs):
// - work requests on one QP execute in order; a SEND consumes the oldest
//   receive posted on the peer QP; an RDMA WRITE followed by a SEND on the
//   same QP is visible in the peer's memory when the SEND's receive completes;
// - a failed work request moves the QP to the error state: every later and
//   outstanding request completes with kFlushed;
// - errors always complete, even for unsignaled work requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "base/result.hpp"
#include "rdma/verbs_conn_info.hpp"
#include "rdma/verbs_registration.hpp"

namespace ssi::rdma {

enum class WcStatus {
  kSuccess,
  kLocalLength,       // a SEND did not fit the receive buffer (IBV_WC_LOC_LEN_ERR)
  kLocalProtection,   // lkey does not cover the local buffer
  kRemoteAccess,      // rkey / bounds / access rights violated at the peer
  kRemoteInvalidRequest,
  kRnrRetryExceeded,  // the peer had no receive posted
  kRetryExceeded,     // the peer QP is gone or unreachable
  kFlushed,           // the QP was already in the error state
  kOther,
};
std::string_view wc_status_name(WcStatus s);

enum class WcOpcode { kSend, kRdmaWrite, kRdmaRead, kRecv };

struct Completion {
  std::uint64_t wr_id = 0;
  WcStatus status = WcStatus::kSuccess;
  WcOpcode opcode = WcOpcode::kSend;
  std::uint32_t qp_num = 0;
  std::uint32_t byte_len = 0;        // receives: bytes the SEND carried
  std::optional<std::uint32_t> imm;  // receives: the sender's immediate data
};

// One scatter/gather element: registered local memory.
struct LocalBuf {
  std::byte* addr = nullptr;
  std::uint32_t length = 0;
  std::uint32_t lkey = 0;
};

class VerbsQp {
 public:
  virtual ~VerbsQp() = default;
  virtual std::uint32_t qpn() const = 0;
  // Our half of the connection info (lid, qpn, psn, gid, mtu).
  virtual VerbsConnInfo local_info() const = 0;
  // INIT -> RTR -> RTS against the peer's info. Receives may be posted before.
  virtual Result<void> connect(const VerbsConnInfo& remote) = 0;
  virtual Result<void> post_recv(std::uint64_t wr_id, LocalBuf buf) = 0;
  // SEND (with immediate data if `imm`) of the concatenated `sges`.
  virtual Result<void> post_send(std::uint64_t wr_id, std::span<const LocalBuf> sges,
                                 std::optional<std::uint32_t> imm, bool signaled) = 0;
  virtual Result<void> post_write(std::uint64_t wr_id, LocalBuf local, std::uint64_t remote_addr,
                                  std::uint32_t rkey, bool signaled) = 0;
  virtual Result<void> post_read(std::uint64_t wr_id, LocalBuf local, std::uint64_t remote_addr,
                                 std::uint32_t rkey) = 0;
};

// Registration (MemoryRegistrar) grants local write and remote read/write.
class VerbsFabric : public MemoryRegistrar {
 public:
  virtual std::string_view name() const = 0;  // device name, for messages
  virtual Result<std::unique_ptr<VerbsQp>> create_qp(std::uint32_t max_send,
                                                     std::uint32_t max_recv) = 0;
  // Readable (epoll) after arm() once a completion is queued.
  virtual int completion_fd() const = 0;
  // Consumes the channel event (get + ack); call when the fd is readable.
  virtual Result<void> consume_event() = 0;
  // Request an event for the next completion (ibv_req_notify_cq).
  virtual Result<void> arm() = 0;
  // Dequeues up to out.size() completions; 0 when the queue is empty.
  virtual Result<std::size_t> poll(std::span<Completion> out) = 0;
  virtual std::uint32_t cq_depth() const = 0;
};

// RDMA devices ibv_get_device_list() sees; 0 where it returns NULL (no
// uverbs in the kernel). Tests use it to pick the device or no-device path.
int rdma_device_count();

struct VerbsOptions;
// The first (or the named) RDMA device; kUnsupported "no RDMA device: ..."
// where ibv_get_device_list finds none.
Result<std::unique_ptr<VerbsFabric>> make_ibv_fabric(const VerbsOptions& options);

}  // namespace ssi::rdma
