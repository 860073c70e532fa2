#include "multinode/outbox.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

namespace ssi::multinode {

struct Outbox::State {
  struct Item {
    rdma::Frame frame;
    OnError on_error;
    std::uint64_t merge_key = 0;
  };
  struct Queue {
    std::deque<Item> items;
    bool draining = false;  // a drain fiber is posted or running
  };

  explicit State(rdma::Transport& t) : transport(t) {}

  // On the reactor thread, one fiber per peer: frames leave in queue order
  // (a send may yield while the connection is congested; the next waits).
  void drain(NodeId peer) {
    for (;;) {
      Item item;
      {
        std::lock_guard lock(mu);
        Queue& q = queues[peer];
        if (q.items.empty() || cancelled) {
          q.items.clear();
          q.draining = false;
          return;
        }
        item = std::move(q.items.front());
        q.items.pop_front();
      }
      room.notify_all();
      auto r = transport.send(peer, std::move(item.frame));
      bool report;
      {
        std::lock_guard lock(mu);
        if (r.ok()) ++sent;
        report = !r.ok() && !cancelled;
      }
      if (report && item.on_error) item.on_error(r.error());
    }
  }

  rdma::Transport& transport;
  std::mutex mu;  // never held across a send or a callback
  std::condition_variable room;
  std::map<NodeId, Queue> queues;
  bool cancelled = false;
  std::uint64_t sent = 0;
  std::uint64_t merged = 0;
};

Outbox::Outbox(rdma::Reactor& reactor, rdma::Transport& transport)
    : reactor_(reactor), state_(std::make_shared<State>(transport)) {}

bool Outbox::send(NodeId peer, rdma::Frame frame, OnError on_error, std::uint64_t merge_key) {
  State& s = *state_;
  std::unique_lock lock(s.mu);
  State::Queue& q = s.queues[peer];
  auto merges = [&] {
    return merge_key != 0 && !q.items.empty() && q.items.back().merge_key == merge_key;
  };
  // The reactor thread itself must not wait for its own drain fiber.
  if (!reactor_.on_reactor_thread())
    s.room.wait(lock, [&] { return s.cancelled || merges() || q.items.size() < kMaxQueued; });
  if (s.cancelled) return false;
  if (merges()) {
    ++s.merged;
    return true;
  }
  q.items.push_back({std::move(frame), std::move(on_error), merge_key});
  if (!q.draining) {
    q.draining = true;
    reactor_.post([state = state_, peer] { state->drain(peer); });
  }
  return true;
}

void Outbox::cancel() {
  {
    std::lock_guard lock(state_->mu);
    state_->cancelled = true;
  }
  state_->room.notify_all();
}

std::uint64_t Outbox::sent() const {
  std::lock_guard lock(state_->mu);
  return state_->sent;
}

std::uint64_t Outbox::merged() const {
  std::lock_guard lock(state_->mu);
  return state_->merged;
}

}  // namespace ssi::multinode
