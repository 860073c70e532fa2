// Node agent: one node's DSM. Ties the Region (this node's copy of guest
// RAM), the PageTable (requester side), the Directory (home side for the
// pages homed here) and a Transport together on the node's Reactor thread.
//
// - The userfaultfd is watched by the reactor; each fault event either joins
//   a request in flight for its page (concurrent faults coalesce), is just
//   woken (already satisfied), or starts a request: one fiber per
//   outstanding request sends it to the page's home and waits for it to be
//   installed (logging if that takes longer than request_timeout).
// - Every received DSM frame runs in its own fiber (Transport contract):
//   home-side frames go to the Directory, requester-side ones to the
//   PageTable, and the agent performs the resulting uffd ioctls and sends.
// - Frames to this node itself (it is home of the page it faulted on) are
//   delivered locally in a fresh fiber, so the home logic is the same.
// - Bad input (unknown node, page out of range, stale version, unexpected
//   message) is counted in stats().bad_messages, logged, and ignored.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "dsm/directory.hpp"
#include "dsm/home_map.hpp"
#include "dsm/outbox.hpp"
#include "dsm/page_table.hpp"
#include "dsm/region.hpp"
#include "dsm/stats.hpp"
#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"

namespace ssi::dsm {

// The hold window: a page granted to this node for a fault is not given up
// (to an invalidation or fetch) until `window` after the grant, so that the
// woken thread can retry its access first. Off by default (0): on hardware a
// woken thread retries within microseconds, before a request can take the
// page away, and a window slows every handover of a contended page by its
// length. Where threads resume slowly (an emulated host) and several nodes
// write the same pages, a window of a few milliseconds turns a livelock into
// progress. docs/protocol.md, "Hold window".
struct HoldPolicy {
  std::chrono::microseconds window{0};
  // SSI_DSM_HOLD_US=N in the environment sets it for every node
  // (Node::create applies it).
  static std::optional<std::chrono::microseconds> env_override();
};

// Hot pages (docs/protocol.md, "Migratory pages" and "Hot pages"): the
// home grants a read miss of a migratory page writable, and marks writable
// grants of hot pages; a node holds a hot page it was granted until its
// faulting thread has changed it, but at most `hold`, before it answers a
// fetch for it. Unlike HoldPolicy's window, an unchanged page is the only
// thing that waits, and only on pages that move from writer to writer.
// Off by default: they halve a host-level ping-pong round, but the guest
// litmus kernel in the KVM test VM did not get faster with them (measured
// in docs/protocol.md); turn them on with migratory = true, hold = 2 ms.
struct HotPagePolicy {
  bool migratory = false;
  std::chrono::microseconds hold{0};
  // SSI_DSM_MIGRATORY=0 and SSI_DSM_HOT_HOLD_US=N override them for every
  // node (Node::create applies them).
  void apply_env();
};

struct NodeConfig {
  NodeId self;
  std::uint32_t nodes = 1;
  std::uint64_t bytes = 0;                // guest RAM size, the same on every node
  std::vector<HomeMap::Range> homes;      // empty: equal contiguous chunks
  std::chrono::milliseconds request_timeout{5000};  // log a request stuck this long
  HoldPolicy hold;  // off by default (see HoldPolicy)
  HotPagePolicy hot;
  // Reactor thread: a fault this node can no longer serve because a peer
  // failed (peer_failed). Called for each such fault before its threads are
  // released, with "page P (home node H): node D lost: why"; the owner stops
  // whatever runs on the memory (a machine stops its vCPUs). Optional.
  std::function<void(PageNo, const Error&)> on_fault_failed;
  // Reactor thread: a fault of thread `tid` this node sends to page p's
  // home (read, write or upgrade request), for per-thread accounting (vCPU
  // placement by fault counters, docs/mobility.md). Optional.
  std::function<void(PageNo, NodeId home, std::uint32_t tid)> on_request;
};

// What a handover moved (Node::hand_over).
struct HandoverStats {
  std::uint64_t entries = 0;       // directory entries sent to the new home
  std::uint64_t entry_pages = 0;   // of them, with the page's data
  std::uint64_t kept = 0;          // of them, the new home held already (pre-copy)
  std::uint64_t written_back = 0;  // pages held in M, homed elsewhere, written back
  std::uint64_t left = 0;          // copysets left (pages held in S, homed elsewhere)
  std::uint64_t bytes = 0;         // page data sent
  std::uint64_t pages_rehomed = 0;
  std::chrono::microseconds took{0};
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> create(NodeConfig config, rdma::Reactor& reactor,
                                              rdma::Transport& transport);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Reactor thread: watch the uffd and route the transport's DSM frames
  // (kDsmFrames) here. Peers must be connected before the first fault.
  Result<void> start();
  // Reactor thread: stop handling faults and frames; release waiting fibers.
  void stop();
  // Reactor thread: handle one frame (start() routes the transport's DSM
  // frames, kDsmFrames, here).
  void deliver(rdma::Frame&& frame);
  // Reactor thread: peer `peer` is gone (its transport reported it down, or
  // the owner learned it another way). The DSM has no recovery: the dead
  // node may hold the only copy of a page, owe an acknowledgement, or be the
  // home. So from now on this node serves no fault: every request in flight
  // (whatever its home; one homed on a live node may wait on a fetch or
  // invalidation of the dead one) and every later fault fails. A failed fault
  // is reported (on_fault_failed), then its threads are released by mapping
  // a zero page (or lifting the write protection) so that they leave the
  // kernel; the owner must already be stopping them. docs/protocol.md,
  // "Peer failure". The transport's peer-down handler belongs to whoever
  // owns the transport: it calls this. Idempotent; the first failure is kept.
  void peer_failed(NodeId peer, const Error& why);
  // Reactor thread: the same for a failure the owner found ("node D lost"
  // from its control plane, or a machine stopped while faults wait).
  void fail(const Error& why);
  // Any thread: the first failure ("node D lost: why"), if any.
  std::optional<Error> failure() const;

  // Reactor thread, in a fiber: this node retires and node `to` takes its
  // share (docs/mobility.md, "Retiring a node"). Only at a barrier: nothing
  // on any node touches the memory and no request is in flight (checked
  // here for this node's own requests and home; kInvalidArgument otherwise). This node
  // writes back the pages it holds in M that are homed elsewhere and leaves
  // every copyset, sends its directory entries (with the data `to` does not
  // hold) to `to`, and tells every other node to home its pages on `to`;
  // returns once each has answered (at most `timeout`). From then on this
  // node serves nothing: a later fault here fails. Other nodes then ignore
  // its connection closing (peer_failed).
  Result<HandoverStats> hand_over(NodeId to,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Reactor thread: true once this node handed its share over.
  bool retired() const { return retired_; }

  std::byte* base() const { return region_.base(); }
  std::size_t size() const { return region_.size(); }
  NodeId self() const { return config_.self; }
  const HomeMap& homes() const { return map_; }
  const NodeStats& stats() const { return stats_; }
  // Reactor thread only (tests, debugging).
  PageView page_view(PageNo p) const { return table_.view(p); }
  DirView dir_view(PageNo p) const { return directory_.view(p); }

 private:
  struct Inflight;
  Node(NodeConfig config, HomeMap map, Region region, rdma::Reactor& reactor,
       rdma::Transport& transport);

  void on_uffd_ready();
  void on_fault(const FaultEvent& ev);
  void start_request(PageNo p, FaultAction action);
  void on_frame(rdma::Frame&& f);
  void on_home_frame(const rdma::Frame& f);
  void on_grant(rdma::Frame& f);
  void on_inv_ack(rdma::Frame& f);
  // Install a granted page, end its request, GrantAck the home.
  void complete_grant(PageNo p, InstallAction action, std::uint64_t version,
                      std::span<const std::byte> data);
  void on_inv(const rdma::Frame& f);
  void on_fetch(const rdma::Frame& f);
  Result<void> install(PageNo p, InstallAction action, std::span<const std::byte> data);
  void finish_request(PageNo p);
  // Fiber: wait out the hold window of page p (see HoldPolicy).
  void wait_hold(PageNo p);
  void send_out(const OutMsg& m);
  void bad_message(const rdma::FrameHeader& h, const Error& why);
  void local_error(const Error& why);
  // Reactor thread: report fault on page p as failed and release its threads.
  void fail_fault(PageNo p, bool wp);
  // The receiving side of a handover (kHandEntry ... kHandEndAck).
  void on_handover_frame(const rdma::Frame& f);
  Result<void> take_handover_frame(const rdma::Frame& f);
  Result<void> take_entry(NodeId from, PageNo p, std::uint64_t version, std::uint64_t flags,
                          std::uint64_t sharers, std::span<const std::byte> data);
  struct HandoverWait;

  NodeConfig config_;
  HomeMap map_;
  Region region_;
  rdma::Reactor& reactor_;
  rdma::Transport& transport_;
  PageTable table_;
  Directory directory_;
  NodeStats stats_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Inflight>> inflight_;
  std::vector<std::chrono::steady_clock::time_point> granted_at_;  // per page: last grant installed
  // Pages held from a migratory or hot grant: their contents as granted
  // and when, so that a fetch can wait for the faulting thread to change it
  // (kGrantHot) and tell the home whether it was written (kGrantClean).
  struct Granted {
    std::vector<std::byte> copy;
    std::chrono::steady_clock::time_point at;
    bool migratory = false, hot = false;
  };
  std::unordered_map<std::uint64_t, Granted> granted_copy_;
  // Fiber: wait until the hot page p changed since its grant, at most the
  // hot-page hold.
  void wait_hot(PageNo p);
  std::vector<std::byte> zero_page_ = std::vector<std::byte>(kPageSize);
  bool started_ = false;
  bool stopping_ = false;
  bool failed_ = false;  // reactor thread
  bool retired_ = false;  // reactor thread: this node handed its share over
  std::uint64_t gone_ = 0;  // reactor thread: bit n = node n retired
  // Reactor thread, per node handing over: its frames taken and rejected.
  std::vector<std::uint64_t> hand_taken_, hand_rejected_;
  std::shared_ptr<HandoverWait> handover_;  // this node's own handover, while it waits
  mutable std::mutex failure_mu_;
  std::optional<Error> failure_;  // under failure_mu_
};

}  // namespace ssi::dsm
