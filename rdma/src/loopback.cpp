#include "rdma/loopback.hpp"

#include <algorithm>
#include <atomic>
#include <deque>

#include <boost/fiber/operations.hpp>

#include "base/log.hpp"
#include "rdma/codec.hpp"

namespace ssi::rdma {

using Clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kBackPressureFibers = 64;

Frame clone(const Frame& f) {
  Frame c;
  c.header = f.header;
  c.payload = Payload::copy_of(f.payload.bytes());
  return c;
}
std::pair<NodeId, NodeId> ordered(NodeId a, NodeId b) { return a < b ? std::pair{a, b} : std::pair{b, a}; }
}  // namespace

// The receiving side of one node. Everything but `reactor` and `delivered`
// is touched only on that node's reactor thread.
struct LoopbackInbox : std::enable_shared_from_this<LoopbackInbox> {
  struct Link {  // frames from one source, in arrival order
    std::deque<std::pair<Clock::time_point, Frame>> queue;
    Clock::time_point last_due{};
    bool draining = false;
  };

  LoopbackTransport* transport;
  Reactor* reactor;
  std::unordered_map<NodeId, Link> links;
  std::unordered_map<NodeId, StreamDecoder> decoders;
  std::atomic<std::uint64_t> delivered{0};

  LoopbackInbox(LoopbackTransport* t, Reactor* r) : transport(t), reactor(r) {}

  void run_here(Reactor::Task task) {
    if (reactor->on_reactor_thread()) task();
    else reactor->post(std::move(task));
  }

  void deliver(Frame&& f) {
    if (!transport || transport->is_shut_down()) return;
    ++delivered;
    transport->deliver(std::move(f));
  }

  void enqueue(NodeId from, Frame&& f, std::chrono::microseconds delay, bool reorder) {
    Link& link = links[from];
    if (delay.count() == 0 && !reorder && link.queue.empty()) {
      deliver(std::move(f));
      return;
    }
    auto due = std::max(Clock::now() + delay, link.last_due);
    link.last_due = due;
    if (reorder && !link.queue.empty()) {
      link.queue.insert(link.queue.end() - 1, {link.queue.back().first, std::move(f)});
    } else {
      link.queue.emplace_back(due, std::move(f));
    }
    if (!link.draining) {
      link.draining = true;
      reactor->spawn([self = shared_from_this(), from] { self->drain(from); });
    }
  }

  // One fiber per busy link: releases its frames in order at their due time.
  void drain(NodeId from) {
    for (;;) {
      auto it = links.find(from);
      if (it == links.end()) return;
      Link& link = it->second;
      if (link.queue.empty()) {
        link.draining = false;
        return;
      }
      auto due = link.queue.front().first;
      if (due > Clock::now()) {
        boost::this_fiber::sleep_until(due);
        continue;
      }
      Frame f = std::move(link.queue.front().second);
      link.queue.pop_front();
      deliver(std::move(f));
    }
  }
};

LoopbackNetwork::LoopbackNetwork(std::uint64_t seed, LoopbackFaults faults)
    : seed_(seed), faults_(faults), rng_(seed) {}

LoopbackNetwork::~LoopbackNetwork() = default;

void LoopbackNetwork::set_faults(LoopbackFaults faults) {
  std::lock_guard lock(mutex_);
  faults_ = faults;
}

Result<std::unique_ptr<LoopbackTransport>> LoopbackNetwork::create(NodeId id, Reactor& reactor) {
  {
    std::lock_guard lock(mutex_);
    if (nodes_.count(id))
      return make_error(Errc::kInvalidArgument, fmt::format("loopback node {} exists", id));
  }
  auto t = std::make_unique<LoopbackTransport>(id, reactor, *this);
  std::lock_guard lock(mutex_);
  nodes_[id] = t->inbox_;
  dead_.erase(id);
  return t;
}

void LoopbackNetwork::partition(NodeId a, NodeId b) {
  std::lock_guard lock(mutex_);
  partitions_.insert(ordered(a, b));
}

void LoopbackNetwork::heal(NodeId a, NodeId b) {
  std::lock_guard lock(mutex_);
  partitions_.erase(ordered(a, b));
}

void LoopbackNetwork::kill(NodeId node) {
  std::shared_ptr<LoopbackInbox> victim;
  {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return;
    victim = it->second;
  }
  node_gone(node, make_error(Errc::kDisconnected, fmt::format("node {} was killed", node)));
  victim->run_here([victim] {
    if (victim->transport) victim->transport->shutdown();
  });
}

void LoopbackNetwork::inject_bytes(NodeId from, NodeId to, std::span<const std::byte> bytes) {
  std::shared_ptr<LoopbackInbox> inbox;
  {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(to);
    if (it == nodes_.end()) return;
    inbox = it->second;
  }
  auto& decoder = inbox->decoders[from];
  auto r = decoder.feed(bytes, [&](Frame&& f) {
    f.header.src = from.value();  // a stream's source is its connection, not the header
    inbox->deliver(std::move(f));
  });
  if (!r.ok()) {
    inbox->decoders.erase(from);
    log::get("rdma")->warn("node {}: dropping stream from node {}: {}", to, from, r.error().to_string());
    if (inbox->transport) inbox->transport->peer_down(from, r.error());
  }
}

void LoopbackNetwork::close_stream(NodeId from, NodeId to) {
  std::shared_ptr<LoopbackInbox> inbox;
  {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(to);
    if (it == nodes_.end()) return;
    inbox = it->second;
  }
  auto it = inbox->decoders.find(from);
  if (it == inbox->decoders.end()) return;  // already dropped
  bool mid_frame = it->second.mid_frame();
  inbox->decoders.erase(it);
  if (inbox->transport)
    inbox->transport->peer_down(
        from, make_error(Errc::kDisconnected, mid_frame ? "stream closed in the middle of a frame"
                                                        : "stream closed"));
}

LoopbackStats LoopbackNetwork::stats() const {
  std::lock_guard lock(mutex_);
  LoopbackStats s = stats_;
  for (auto& [id, inbox] : nodes_) s.delivered += inbox->delivered.load();
  return s;
}

LoopbackNetwork::Decision LoopbackNetwork::decide() {
  Decision d;
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  if (faults_.drop > 0 && coin(rng_) < faults_.drop) {
    d.drop = true;
    return d;
  }
  if (faults_.duplicate > 0 && coin(rng_) < faults_.duplicate) d.copies = 2;
  d.delay = faults_.min_delay;
  if (faults_.max_delay > faults_.min_delay) {
    std::uniform_int_distribution<std::int64_t> span(faults_.min_delay.count(), faults_.max_delay.count());
    d.delay = std::chrono::microseconds(span(rng_));
  }
  if (faults_.reorder_within_pair > 0 && coin(rng_) < faults_.reorder_within_pair) d.reorder = true;
  return d;
}

Result<void> LoopbackNetwork::route(NodeId from, NodeId to, Frame&& frame) {
  std::shared_ptr<LoopbackInbox> inbox;
  Decision d;
  {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(to);
    if (it == nodes_.end() || dead_.count(to))
      return make_error(Errc::kDisconnected, fmt::format("loopback node {} is not reachable", to));
    ++stats_.sent;
    if (partitions_.count(ordered(from, to))) {
      ++stats_.dropped;
      return ok();
    }
    d = decide();
    if (d.drop) {
      ++stats_.dropped;
      return ok();
    }
    if (d.copies > 1) ++stats_.duplicated;
    if (d.reorder) ++stats_.reordered;
    inbox = it->second;
  }
  frame.payload = std::move(frame.payload).to_owned();
  for (int i = 0; i < d.copies; ++i) {
    Frame f = i + 1 < d.copies ? clone(frame) : std::move(frame);
    if (inbox->reactor->on_reactor_thread()) {
      inbox->enqueue(from, std::move(f), d.delay, d.reorder);
      // Back-pressure: let the receiver's handlers run before piling up
      // more fibers (one yield, never a wait, so it cannot deadlock).
      if (inbox->transport && inbox->transport->handlers_running() > kBackPressureFibers)
        boost::this_fiber::yield();
    } else {
      auto fp = std::make_shared<Frame>(std::move(f));
      inbox->reactor->post([inbox, from, fp, d] { inbox->enqueue(from, std::move(*fp), d.delay, d.reorder); });
    }
  }
  return ok();
}

void LoopbackNetwork::node_gone(NodeId node, const Error& why) {
  std::vector<std::shared_ptr<LoopbackInbox>> others;
  {
    std::lock_guard lock(mutex_);
    if (!nodes_.count(node) || !dead_.insert(node).second) return;
    for (auto& [id, inbox] : nodes_)
      if (id != node && !dead_.count(id)) others.push_back(inbox);
  }
  for (auto& inbox : others) {
    inbox->run_here([inbox, node, why] {
      inbox->links.erase(node);  // a dead node's frames in flight are lost
      inbox->decoders.erase(node);
      if (inbox->transport) inbox->transport->peer_down(node, why);
    });
  }
}

void LoopbackNetwork::unregister(NodeId node) {
  std::lock_guard lock(mutex_);
  nodes_.erase(node);
  dead_.erase(node);
}

LoopbackTransport::LoopbackTransport(NodeId self, Reactor& reactor, LoopbackNetwork& network)
    : TransportBase(self, reactor), network_(network),
      inbox_(std::make_shared<LoopbackInbox>(this, &reactor)) {}

LoopbackTransport::~LoopbackTransport() {
  shutdown();
  inbox_->transport = nullptr;
  network_.unregister(self());
}

Address LoopbackTransport::local_address() const { return fmt::format("loop:{}", self()); }

Result<void> LoopbackTransport::connect(NodeId peer, const Address& address) {
  if (address != fmt::format("loop:{}", peer))
    return make_error(Errc::kInvalidArgument,
                      fmt::format("address '{}' is not loopback node {}", address, peer));
  std::lock_guard lock(network_.mutex_);
  if (!network_.nodes_.count(peer)) return make_error(Errc::kNotFound, fmt::format("no loopback node {}", peer));
  if (network_.dead_.count(peer))
    return make_error(Errc::kDisconnected, fmt::format("loopback node {} is down", peer));
  return ok();
}

Result<void> LoopbackTransport::send_frame(NodeId peer, Frame&& frame) {
  return network_.route(self(), peer, std::move(frame));
}

void LoopbackTransport::close_all() {
  network_.node_gone(self(), make_error(Errc::kDisconnected, fmt::format("node {} shut down", self())));
}

}  // namespace ssi::rdma
