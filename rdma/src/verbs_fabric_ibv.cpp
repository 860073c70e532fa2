// VerbsFabric over libibverbs: thin adapters from the fabric interface to
// VerbsDevice / VerbsQueuePair (verbs_device.cpp, rc_pingpong's sequence).
// Never run on the project's machines (no RDMA device); the transport logic
// above it runs in tests over the soft RC fabric.
#include <endian.h>
#include <fmt/format.h>

#include <array>
#include <random>

#include "rdma/verbs_device.hpp"
#include "rdma/verbs_fabric.hpp"

namespace ssi::rdma {
namespace {

WcStatus status_of(ibv_wc_status s) {
  switch (s) {
    case IBV_WC_SUCCESS: return WcStatus::kSuccess;
    case IBV_WC_LOC_LEN_ERR: return WcStatus::kLocalLength;
    case IBV_WC_LOC_PROT_ERR: return WcStatus::kLocalProtection;
    case IBV_WC_REM_ACCESS_ERR: return WcStatus::kRemoteAccess;
    case IBV_WC_REM_INV_REQ_ERR: return WcStatus::kRemoteInvalidRequest;
    case IBV_WC_RNR_RETRY_EXC_ERR: return WcStatus::kRnrRetryExceeded;
    case IBV_WC_RETRY_EXC_ERR: return WcStatus::kRetryExceeded;
    case IBV_WC_WR_FLUSH_ERR: return WcStatus::kFlushed;
    default: return WcStatus::kOther;
  }
}

WcOpcode opcode_of(ibv_wc_opcode op) {
  switch (op) {
    case IBV_WC_RDMA_WRITE: return WcOpcode::kRdmaWrite;
    case IBV_WC_RDMA_READ: return WcOpcode::kRdmaRead;
    case IBV_WC_RECV:
    case IBV_WC_RECV_RDMA_WITH_IMM: return WcOpcode::kRecv;
    default: return WcOpcode::kSend;
  }
}

ibv_sge sge_of(const LocalBuf& b) {
  return ibv_sge{reinterpret_cast<std::uint64_t>(b.addr), b.length, b.lkey};
}

class IbvQp final : public VerbsQp {
 public:
  IbvQp(VerbsQueuePair qp, std::uint32_t psn) : qp_(std::move(qp)), psn_(psn) {}
  std::uint32_t qpn() const override { return qp_.qpn(); }
  VerbsConnInfo local_info() const override { return qp_.local_info(psn_); }
  Result<void> connect(const VerbsConnInfo& remote) override { return qp_.connect(remote, psn_); }
  Result<void> post_recv(std::uint64_t wr_id, LocalBuf buf) override {
    return qp_.post_recv(wr_id, std::span(buf.addr, buf.length), buf.lkey);
  }
  Result<void> post_send(std::uint64_t wr_id, std::span<const LocalBuf> sges,
                         std::optional<std::uint32_t> imm, bool signaled) override {
    std::array<ibv_sge, 2> list;
    if (sges.size() > list.size())
      return make_error(Errc::kInvalidArgument, fmt::format("{} SGEs, at most 2", sges.size()));
    for (std::size_t i = 0; i < sges.size(); ++i) list[i] = sge_of(sges[i]);
    return qp_.post_send(wr_id, std::span(list.data(), sges.size()), imm, signaled);
  }
  Result<void> post_write(std::uint64_t wr_id, LocalBuf local, std::uint64_t remote_addr,
                          std::uint32_t rkey, bool signaled) override {
    return qp_.post_rdma(IBV_WR_RDMA_WRITE, wr_id, sge_of(local), remote_addr, rkey, signaled);
  }
  Result<void> post_read(std::uint64_t wr_id, LocalBuf local, std::uint64_t remote_addr,
                         std::uint32_t rkey) override {
    return qp_.post_rdma(IBV_WR_RDMA_READ, wr_id, sge_of(local), remote_addr, rkey, true);
  }

 private:
  VerbsQueuePair qp_;
  std::uint32_t psn_;
};

class IbvFabric final : public VerbsFabric {
 public:
  explicit IbvFabric(std::unique_ptr<VerbsDevice> device)
      : device_(std::move(device)), name_(ibv_get_device_name(device_->context()->device)) {}

  std::string_view name() const override { return name_; }
  Result<std::unique_ptr<VerbsQp>> create_qp(std::uint32_t max_send,
                                             std::uint32_t max_recv) override {
    SSI_ASSIGN_OR_RETURN(auto qp, VerbsQueuePair::create(*device_, max_send, max_recv));
    // A random first PSN, as rc_pingpong does: stale packets of an earlier
    // connection between the same QPNs are not taken as ours.
    std::uint32_t psn = std::random_device{}() & 0xffffff;
    return std::unique_ptr<VerbsQp>(new IbvQp(std::move(qp), psn));
  }
  int completion_fd() const override { return device_->completion_fd(); }
  Result<void> consume_event() override { return device_->consume_event(); }
  Result<void> arm() override { return device_->arm(); }
  Result<std::size_t> poll(std::span<Completion> out) override {
    std::array<ibv_wc, 32> wc;
    std::size_t n = std::min(out.size(), wc.size());
    SSI_ASSIGN_OR_RETURN(int got, device_->poll(std::span(wc.data(), n)));
    for (int i = 0; i < got; ++i) {
      const ibv_wc& w = wc[static_cast<std::size_t>(i)];
      Completion& c = out[static_cast<std::size_t>(i)];
      c.wr_id = w.wr_id;
      c.status = status_of(w.status);
      // Only the status (and wr_id) is valid in a failed completion.
      c.opcode = w.status == IBV_WC_SUCCESS ? opcode_of(w.opcode) : WcOpcode::kSend;
      c.qp_num = w.qp_num;
      c.byte_len = w.byte_len;
      c.imm.reset();
      if (w.status == IBV_WC_SUCCESS && (w.wc_flags & IBV_WC_WITH_IMM)) c.imm = be32toh(w.imm_data);
    }
    return static_cast<std::size_t>(got);
  }
  std::uint32_t cq_depth() const override { return static_cast<std::uint32_t>(device_->cq_depth()); }
  Result<Registration> register_region(std::span<std::byte> region) override {
    return device_->register_region(region);
  }
  void deregister(std::uintptr_t handle) override { device_->deregister(handle); }

 private:
  std::unique_ptr<VerbsDevice> device_;
  std::string name_;
};

}  // namespace

std::string_view wc_status_name(WcStatus s) {
  switch (s) {
    case WcStatus::kSuccess: return "success";
    case WcStatus::kLocalLength: return "local length error (message larger than the receive buffer)";
    case WcStatus::kLocalProtection: return "local protection error (lkey does not cover the buffer)";
    case WcStatus::kRemoteAccess: return "remote access error (rkey or bounds violation)";
    case WcStatus::kRemoteInvalidRequest: return "remote invalid request";
    case WcStatus::kRnrRetryExceeded: return "receiver not ready (no receive posted)";
    case WcStatus::kRetryExceeded: return "transport retry exceeded (peer QP gone)";
    case WcStatus::kFlushed: return "flushed (QP in error state)";
    case WcStatus::kOther: return "other error";
  }
  return "unknown";
}

int rdma_device_count() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) return 0;
  ibv_free_device_list(list);
  return n;
}

Result<std::unique_ptr<VerbsFabric>> make_ibv_fabric(const VerbsOptions& options) {
  SSI_ASSIGN_OR_RETURN(auto device, VerbsDevice::open(options));
  return std::unique_ptr<VerbsFabric>(new IbvFabric(std::move(device)));
}

}  // namespace ssi::rdma
