#include "rdma/verbs_device.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <endian.h>
#include <utility>

namespace ssi::rdma {

namespace {

// ibv_* calls return an errno value (or -1 with errno set, depending on the
// call and provider); normalise both.
Error verbs_error(const std::string& what, int rc) {
  int err = rc > 0 ? rc : errno;
  return Error::from_errno(what, err);
}

ibv_mtu mtu_enum(std::uint16_t bytes) {
  switch (bytes) {
    case 256: return IBV_MTU_256;
    case 512: return IBV_MTU_512;
    case 2048: return IBV_MTU_2048;
    case 4096: return IBV_MTU_4096;
    default: return IBV_MTU_1024;
  }
}

std::uint16_t mtu_to_bytes(ibv_mtu m) { return static_cast<std::uint16_t>(128u << m); }

struct DeviceList {
  ibv_device** list = nullptr;
  int count = 0;
  ~DeviceList() {
    if (list != nullptr) ibv_free_device_list(list);  // NULL is not freeable
  }
};

}  // namespace

Result<std::unique_ptr<VerbsDevice>> VerbsDevice::open(const VerbsOptions& options) {
  DeviceList devs;
  errno = 0;
  devs.list = ibv_get_device_list(&devs.count);
  if (devs.list == nullptr) {
    // Kernels without uverbs (this project's CI) answer NULL + ENOSYS.
    int err = errno != 0 ? errno : ENODEV;
    return Error{Errc::kUnsupported,
                 fmt::format("no RDMA device: ibv_get_device_list: {}", std::strerror(err)), err};
  }
  if (devs.count == 0) {
    return make_error(Errc::kUnsupported, "no RDMA device: ibv_get_device_list found none");
  }
  ibv_device* dev = nullptr;
  for (int i = 0; i < devs.count && dev == nullptr; ++i) {
    if (options.device.empty() || options.device == ibv_get_device_name(devs.list[i])) {
      dev = devs.list[i];
    }
  }
  if (dev == nullptr) {
    return make_error(Errc::kNotFound, "no RDMA device named " + options.device);
  }
  std::unique_ptr<VerbsDevice> d(new VerbsDevice());
  d->port_ = options.port;
  d->gid_index_ = options.gid_index;
  d->ctx_ = ibv_open_device(dev);
  if (d->ctx_ == nullptr) return Error::from_errno("ibv_open_device");
  d->pd_ = ibv_alloc_pd(d->ctx_);
  if (d->pd_ == nullptr) return Error::from_errno("ibv_alloc_pd");
  d->channel_ = ibv_create_comp_channel(d->ctx_);
  if (d->channel_ == nullptr) return Error::from_errno("ibv_create_comp_channel");
  // Non-blocking: the reactor thread must never sleep in ibv_get_cq_event.
  if (int fl = ::fcntl(d->channel_->fd, F_GETFL); fl < 0 || ::fcntl(d->channel_->fd, F_SETFL, fl | O_NONBLOCK) != 0)
    return Error::from_errno("fcntl(O_NONBLOCK) on the completion channel");
  d->cq_ = ibv_create_cq(d->ctx_, options.cq_depth, nullptr, d->channel_, 0);
  if (d->cq_ == nullptr) return Error::from_errno("ibv_create_cq");
  d->cq_depth_ = d->cq_->cqe;  // the provider may round up
  ibv_port_attr port{};
  if (int rc = ibv_query_port(d->ctx_, options.port, &port); rc != 0) {
    return verbs_error(fmt::format("ibv_query_port {}", options.port), rc);
  }
  if (port.state != IBV_PORT_ACTIVE) {
    return make_error(Errc::kUnsupported,
                      fmt::format("RDMA port {} is not active", options.port));
  }
  d->lid_ = port.lid;
  d->mtu_bytes_ = mtu_to_bytes(port.active_mtu);
  if (int rc = ibv_query_gid(d->ctx_, options.port, options.gid_index, &d->gid_); rc != 0) {
    return verbs_error(fmt::format("ibv_query_gid index {}", options.gid_index), rc);
  }
  return d;
}

VerbsDevice::~VerbsDevice() {
  if (cq_ != nullptr) ibv_destroy_cq(cq_);
  if (channel_ != nullptr) ibv_destroy_comp_channel(channel_);
  if (pd_ != nullptr) ibv_dealloc_pd(pd_);
  if (ctx_ != nullptr) ibv_close_device(ctx_);
}

Result<void> VerbsDevice::arm() {
  if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) return verbs_error("ibv_req_notify_cq", rc);
  return ok();
}

Result<void> VerbsDevice::consume_event() {
  ibv_cq* cq = nullptr;
  void* cq_ctx = nullptr;
  if (ibv_get_cq_event(channel_, &cq, &cq_ctx) != 0) {
    if (errno == EAGAIN) return ok();  // woken without an event: nothing to ack
    return Error::from_errno("ibv_get_cq_event");
  }
  ibv_ack_cq_events(cq, 1);
  return ok();
}

Result<int> VerbsDevice::poll(std::span<ibv_wc> out) {
  int n = ibv_poll_cq(cq_, static_cast<int>(out.size()), out.data());
  if (n < 0) return make_error(Errc::kSystem, "ibv_poll_cq failed");
  return n;
}

Result<MemoryRegistrar::Registration> VerbsDevice::register_region(std::span<std::byte> region) {
  ibv_mr* mr = ibv_reg_mr(pd_, region.data(), region.size(),
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                             IBV_ACCESS_REMOTE_READ);
  if (mr == nullptr) {
    return Error::from_errno(fmt::format("ibv_reg_mr {} bytes", region.size()));
  }
  return Registration{{mr->lkey, mr->rkey}, reinterpret_cast<std::uintptr_t>(mr)};
}

void VerbsDevice::deregister(std::uintptr_t handle) {
  ibv_dereg_mr(reinterpret_cast<ibv_mr*>(handle));
}

Result<VerbsQueuePair> VerbsQueuePair::create(VerbsDevice& device, std::uint32_t max_send,
                                              std::uint32_t max_recv) {
  ibv_qp_init_attr attr{};
  attr.send_cq = device.cq();
  attr.recv_cq = device.cq();
  attr.cap.max_send_wr = max_send;
  attr.cap.max_recv_wr = max_recv;
  attr.cap.max_send_sge = 2;  // frame header + page payload
  attr.cap.max_recv_sge = 1;
  attr.qp_type = IBV_QPT_RC;
  VerbsQueuePair q;
  q.device_ = &device;
  q.qp_ = ibv_create_qp(device.pd(), &attr);
  if (q.qp_ == nullptr) return Error::from_errno("ibv_create_qp");
  SSI_TRY(q.to_init());
  return q;
}

VerbsQueuePair::VerbsQueuePair(VerbsQueuePair&& o) noexcept
    : device_(o.device_), qp_(std::exchange(o.qp_, nullptr)) {}

VerbsQueuePair& VerbsQueuePair::operator=(VerbsQueuePair&& o) noexcept {
  if (this != &o) {
    if (qp_ != nullptr) ibv_destroy_qp(qp_);
    device_ = o.device_;
    qp_ = std::exchange(o.qp_, nullptr);
  }
  return *this;
}

VerbsQueuePair::~VerbsQueuePair() {
  if (qp_ != nullptr) ibv_destroy_qp(qp_);
}

VerbsConnInfo VerbsQueuePair::local_info(std::uint32_t psn) const {
  VerbsConnInfo info;
  info.lid = device_->lid();
  info.qpn = qp_->qp_num;
  info.psn = psn & 0xffffff;
  std::memcpy(info.gid.data(), device_->gid().raw, info.gid.size());
  info.mtu = device_->mtu_bytes();
  return info;
}

Result<void> VerbsQueuePair::to_init() {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.pkey_index = 0;
  attr.port_num = device_->port();
  attr.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  if (int rc = ibv_modify_qp(qp_, &attr, mask); rc != 0) return verbs_error("QP -> INIT", rc);
  return ok();
}

Result<void> VerbsQueuePair::to_rtr(const VerbsConnInfo& remote) {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu = mtu_enum(std::min(remote.mtu, device_->mtu_bytes()));
  attr.dest_qp_num = remote.qpn;
  attr.rq_psn = remote.psn;
  attr.max_dest_rd_atomic = 1;
  attr.min_rnr_timer = 12;
  attr.ah_attr.dlid = remote.lid;
  attr.ah_attr.port_num = device_->port();
  // A non-zero interface id means a routable GID (RoCE): address by GID.
  bool global = std::any_of(remote.gid.begin() + 8, remote.gid.end(), [](auto b) { return b; });
  if (global) {
    attr.ah_attr.is_global = 1;
    attr.ah_attr.grh.hop_limit = 1;
    std::memcpy(attr.ah_attr.grh.dgid.raw, remote.gid.data(), remote.gid.size());
    attr.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(device_->gid_index());
  }
  int mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
             IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
  if (int rc = ibv_modify_qp(qp_, &attr, mask); rc != 0) return verbs_error("QP -> RTR", rc);
  return ok();
}

Result<void> VerbsQueuePair::to_rts(std::uint32_t psn) {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = 14;
  attr.retry_cnt = 7;
  attr.rnr_retry = 7;  // "infinite": receivers re-post buffers as they drain
  attr.sq_psn = psn & 0xffffff;
  attr.max_rd_atomic = 1;
  int mask = IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
             IBV_QP_MAX_QP_RD_ATOMIC;
  if (int rc = ibv_modify_qp(qp_, &attr, mask); rc != 0) return verbs_error("QP -> RTS", rc);
  return ok();
}

Result<void> VerbsQueuePair::connect(const VerbsConnInfo& remote, std::uint32_t local_psn) {
  SSI_TRY(to_rtr(remote));
  return to_rts(local_psn);
}

Result<void> VerbsQueuePair::post_recv(std::uint64_t wr_id, std::span<std::byte> buf,
                                       std::uint32_t lkey) {
  ibv_sge sge{reinterpret_cast<std::uint64_t>(buf.data()), static_cast<std::uint32_t>(buf.size()),
              lkey};
  ibv_recv_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (int rc = ibv_post_recv(qp_, &wr, &bad); rc != 0) return verbs_error("ibv_post_recv", rc);
  return ok();
}

Result<void> VerbsQueuePair::post(ibv_send_wr& wr, const char* what) {
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(qp_, &wr, &bad); rc != 0) return verbs_error(what, rc);
  return ok();
}

Result<void> VerbsQueuePair::post_send(std::uint64_t wr_id, std::span<ibv_sge> sges,
                                       std::optional<std::uint32_t> imm, bool signaled) {
  ibv_send_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = sges.data();
  wr.num_sge = static_cast<int>(sges.size());
  wr.opcode = imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
  if (imm) wr.imm_data = htobe32(*imm);  // the wire carries it big-endian
  wr.send_flags = signaled ? IBV_SEND_SIGNALED : 0;
  return post(wr, "ibv_post_send SEND");
}

Result<void> VerbsQueuePair::post_rdma(ibv_wr_opcode opcode, std::uint64_t wr_id, ibv_sge local,
                                       std::uint64_t remote_addr, std::uint32_t rkey,
                                       bool signaled) {
  ibv_send_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &local;
  wr.num_sge = 1;
  wr.opcode = opcode;
  wr.send_flags = signaled ? IBV_SEND_SIGNALED : 0;
  wr.wr.rdma.remote_addr = remote_addr;
  wr.wr.rdma.rkey = rkey;
  return post(wr, opcode == IBV_WR_RDMA_READ ? "ibv_post_send RDMA_READ" : "ibv_post_send RDMA_WRITE");
}

}  // namespace ssi::rdma
