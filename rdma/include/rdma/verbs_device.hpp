// libibverbs resources for RC connections, in the order rc_pingpong.c uses
// them: device -> context -> protection domain -> completion channel + CQ ->
// queue pair, then INIT -> RTR -> RTS with the peer's VerbsConnInfo.
// Every object is RAII; every failure carries errno and what was attempted.
// With no device (ibv_get_device_list() == NULL, or an empty list) open()
// fails with Errc::kUnsupported "no RDMA device: ...".
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/result.hpp"
#include "rdma/verbs_conn_info.hpp"
#include "rdma/verbs_registration.hpp"

namespace ssi::rdma {

struct VerbsOptions {
  std::string device;    // empty: the first device
  std::uint8_t port = 1;
  int gid_index = 0;     // used for RoCE (routable GIDs); IB also works by LID
  int cq_depth = 8192;  // shared by every peer's QP (see VerbsTransportOptions)
};

// Device context + PD + CQ with its completion channel (an fd for epoll).
class VerbsDevice : public MemoryRegistrar {
 public:
  static Result<std::unique_ptr<VerbsDevice>> open(const VerbsOptions& options);
  ~VerbsDevice() override;

  ibv_context* context() const { return ctx_; }
  ibv_pd* pd() const { return pd_; }
  ibv_cq* cq() const { return cq_; }
  std::uint8_t port() const { return port_; }
  int gid_index() const { return gid_index_; }
  std::uint16_t lid() const { return lid_; }
  const ibv_gid& gid() const { return gid_; }
  std::uint16_t mtu_bytes() const { return mtu_bytes_; }
  int cq_depth() const { return cq_depth_; }
  // Readable when a completion arrives after arm(); watch it in epoll.
  int completion_fd() const { return channel_->fd; }
  Result<void> arm();
  // Consumes the channel event (ibv_get_cq_event + ack); call before polling.
  Result<void> consume_event();
  Result<int> poll(std::span<ibv_wc> out);

  Result<Registration> register_region(std::span<std::byte> region) override;
  void deregister(std::uintptr_t handle) override;

 private:
  VerbsDevice() = default;
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  ibv_comp_channel* channel_ = nullptr;
  ibv_cq* cq_ = nullptr;
  std::uint8_t port_ = 1;
  int gid_index_ = 0;
  std::uint16_t lid_ = 0;
  ibv_gid gid_{};
  std::uint16_t mtu_bytes_ = 1024;
  int cq_depth_ = 0;
};

// One RC queue pair to one peer.
class VerbsQueuePair {
 public:
  static Result<VerbsQueuePair> create(VerbsDevice& device, std::uint32_t max_send,
                                       std::uint32_t max_recv);
  VerbsQueuePair(VerbsQueuePair&& o) noexcept;
  VerbsQueuePair& operator=(VerbsQueuePair&& o) noexcept;
  ~VerbsQueuePair();

  std::uint32_t qpn() const { return qp_->qp_num; }
  // Our half of the connection info (the page area is advertised separately).
  VerbsConnInfo local_info(std::uint32_t psn) const;
  // RESET -> INIT -> RTR -> RTS against the peer's info (rc_pingpong's order).
  Result<void> connect(const VerbsConnInfo& remote, std::uint32_t local_psn);

  Result<void> post_recv(std::uint64_t wr_id, std::span<std::byte> buf, std::uint32_t lkey);
  // IBV_WR_SEND, or IBV_WR_SEND_WITH_IMM when `imm` is set.
  Result<void> post_send(std::uint64_t wr_id, std::span<ibv_sge> sges,
                         std::optional<std::uint32_t> imm, bool signaled);
  // One-sided: `local` -> remote (IBV_WR_RDMA_WRITE) or remote -> `local`
  // (IBV_WR_RDMA_READ); both need the remote region's rkey.
  Result<void> post_rdma(ibv_wr_opcode opcode, std::uint64_t wr_id, ibv_sge local,
                         std::uint64_t remote_addr, std::uint32_t rkey, bool signaled);

 private:
  VerbsQueuePair() = default;
  Result<void> to_init();
  Result<void> to_rtr(const VerbsConnInfo& remote);
  Result<void> to_rts(std::uint32_t psn);
  Result<void> post(ibv_send_wr& wr, const char* what);

  VerbsDevice* device_ = nullptr;
  ibv_qp* qp_ = nullptr;
};

}  // namespace ssi::rdma
