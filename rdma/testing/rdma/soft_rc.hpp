// "Soft RC": an in-process fake of VerbsFabric for tests on machines with
// no RDMA device. A SoftRcNetwork is the wire; each SoftRcFabric is one
// node's NIC (registrations + one CQ whose completion channel is an eventfd
// the Reactor can watch); its QPs move bytes between registered regions of
// fabrics on the same network.
//
// Like a NIC, it executes work requests later than they are posted: the
// requests a fabric's QPs posted run when that fabric is next polled (the
// post rings its eventfd so the poller comes), in order per QP. So a caller
// that reuses a buffer before its completion sends the reused bytes.
// It checks what hardware checks and fails the way hardware fails:
// - lkey/rkey + bounds of every buffer (kLocalProtection / kRemoteAccess);
// - a SEND finding no posted receive is kRnrRetryExceeded (stricter than a
//   NIC with infinite RNR retry: a credit bug shows at once), one larger
//   than the receive buffer is kLocalLength at the receiver;
// - the peer QP destroyed, not connected or in error: kRetryExceeded;
// - a failed request moves the QP (and, for remote errors, the peer QP) to
//   the error state: outstanding receives and sends complete kFlushed.
// Test hooks: fail_qp() (a QP error), kill() (a whole node's NIC dies),
// set_remote_access(false) (rkeys stop working).
// Single-threaded: everything runs on one reactor thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "base/unique_fd.hpp"
#include "rdma/verbs_fabric.hpp"

namespace ssi::rdma::testing {

class SoftRcFabric;
class SoftRcQp;

class SoftRcNetwork {
 public:
  SoftRcNetwork() = default;
  SoftRcNetwork(const SoftRcNetwork&) = delete;
  SoftRcNetwork& operator=(const SoftRcNetwork&) = delete;

  // A NIC on this network; the network must outlive it.
  Result<std::unique_ptr<SoftRcFabric>> make_fabric(std::string name, std::uint32_t cq_depth = 8192);
  // Moves QP `qpn` to the error state (as a link or hardware error would).
  bool fail_qp(std::uint32_t qpn);
  // Every QP of `fabric` fails and it executes nothing more (a node died).
  void kill(SoftRcFabric& fabric);
  // Statistics, for tests that check which path the data took.
  std::uint64_t sends() const { return sends_; }
  std::uint64_t writes() const { return writes_; }
  const std::byte* last_write_source() const { return last_write_source_; }
  std::size_t live_qps() const { return qps_.size(); }

 private:
  friend class SoftRcFabric;
  friend class SoftRcQp;
  std::map<std::uint32_t, SoftRcQp*> qps_;
  std::uint32_t next_qpn_ = 0x100;
  std::uint32_t next_key_ = 0x1000;
  std::uint64_t sends_ = 0, writes_ = 0;
  const std::byte* last_write_source_ = nullptr;
};

class SoftRcFabric final : public VerbsFabric {
 public:
  ~SoftRcFabric() override;

  std::string_view name() const override { return name_; }
  Result<std::unique_ptr<VerbsQp>> create_qp(std::uint32_t max_send, std::uint32_t max_recv) override;
  int completion_fd() const override { return event_.get(); }
  Result<void> consume_event() override;
  Result<void> arm() override;
  Result<std::size_t> poll(std::span<Completion> out) override;
  std::uint32_t cq_depth() const override { return cq_depth_; }
  Result<Registration> register_region(std::span<std::byte> region) override;
  void deregister(std::uintptr_t handle) override;

  // Whether [addr, addr + len) lies in one region registered under `key`.
  bool covers(std::uint32_t key, const void* addr, std::size_t len) const;
  // The same for a peer's RDMA READ/WRITE with `key` as rkey.
  bool covers_remote(std::uint32_t key, const void* addr, std::size_t len) const {
    return remote_access_ && covers(key, addr, len);
  }
  // Test hook: false = every region behaves as registered without remote
  // access, so peers' RDMA READ/WRITE fail with kRemoteAccess.
  void set_remote_access(bool allowed) { remote_access_ = allowed; }
  void complete(Completion c);  // queue a completion (ring the channel if armed)
  void ring();                  // make completion_fd() readable
  std::size_t registrations() const { return regions_.size(); }

 private:
  friend class SoftRcNetwork;
  friend class SoftRcQp;
  SoftRcFabric(SoftRcNetwork& net, std::string name, std::uint32_t cq_depth, UniqueFd event)
      : net_(net), name_(std::move(name)), cq_depth_(cq_depth), event_(std::move(event)) {}
  void execute_posted();

  struct Region {
    std::uintptr_t base;
    std::size_t length;
    std::uint32_t key;
  };
  SoftRcNetwork& net_;
  std::string name_;
  std::uint32_t cq_depth_;
  UniqueFd event_;
  std::deque<Completion> cq_;
  bool armed_ = false;
  bool dead_ = false;
  bool overrun_ = false;
  bool remote_access_ = true;
  std::map<std::uintptr_t, Region> regions_;  // by handle
  std::uintptr_t next_handle_ = 1;
  std::map<std::uint32_t, SoftRcQp*> qps_;  // this NIC's, by qpn
};

}  // namespace ssi::rdma::testing
