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
#include <memory>
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

struct NodeConfig {
  NodeId self;
  std::uint32_t nodes = 1;
  std::uint64_t bytes = 0;                // guest RAM size, the same on every node
  std::vector<HomeMap::Range> homes;      // empty: equal contiguous chunks
  std::chrono::milliseconds request_timeout{5000};  // log a request stuck this long
  bool own_receive_handler = true;  // false: the caller routes DSM frames to deliver()
  // How long a page granted to this node for a fault stays here before an
  // invalidation or fetch may take it away: the faulting thread must get to
  // retry its access first, or nodes that all write one page can pass it
  // round forever without any of them making progress (seen with 4 nodes on
  // a slow, emulated host). See docs/dsm.md, "Hold window".
  HoldPolicy hold;
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> create(NodeConfig config, rdma::Reactor& reactor,
                                              rdma::Transport& transport);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Reactor thread: watch the uffd and (by default) take the transport's
  // receive handler. Peers must be connected before the first fault.
  Result<void> start();
  // Reactor thread: stop handling faults and frames; release waiting fibers.
  void stop();
  // Reactor thread: handle one received frame (if own_receive_handler=false).
  void deliver(rdma::Frame&& frame);
  static bool is_dsm_frame(rdma::FrameType t) { return t >= 0x0100 && t <= 0x01ff; }

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
  void on_grant(const rdma::Frame& f);
  void on_inv(const rdma::Frame& f);
  void on_fetch(const rdma::Frame& f);
  Result<void> install(PageNo p, InstallAction action, std::span<const std::byte> data);
  void finish_request(PageNo p);
  // Fiber: wait out the hold window of page p (see HoldPolicy).
  void wait_hold(PageNo p);
  void send_out(const OutMsg& m);
  void bad_message(const rdma::FrameHeader& h, const Error& why);
  void local_error(const Error& why);

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
  std::vector<std::byte> zero_page_ = std::vector<std::byte>(kPageSize);
  bool started_ = false;
  bool stopping_ = false;
};

}  // namespace ssi::dsm
