#include "multinode/transit.hpp"

#include "base/log.hpp"

namespace ssi::multinode {

vcpu::Ipi Departure::only_k(const vcpu::Ipi& ipi) const {
  vcpu::Ipi only = ipi;
  only.shorthand = vcpu::DestShorthand::kNone;
  only.logical = false;
  only.destination = vcpu_;
  return only;
}

void Departure::on_ipi(const vcpu::Ipi& ipi, NodeId origin) {
  std::lock_guard lock(mu_);
  if (switched_.contains(origin)) return;  // that node sends k's IPIs to B itself
  if (to_)
    router_.send_to(*to_, only_k(ipi));
  else
    held_.push_back(only_k(ipi));
}

void Departure::on_left(NodeId origin) {
  std::lock_guard lock(mu_);
  switched_.insert(origin);
  if (to_)
    router_.send_marker(*to_, {vcpu_, MoveMarker::Kind::kFlushed, origin});
  else
    held_.push_back(origin);
}

std::size_t Departure::placed(NodeId to) {
  std::lock_guard lock(mu_);
  to_ = to;
  switched_.insert(self_);
  router_.send_marker(to, {vcpu_, MoveMarker::Kind::kSwitched, self_});
  std::size_t ipis = 0;
  for (const auto& item : held_) {
    if (const auto* ipi = std::get_if<vcpu::Ipi>(&item)) {
      router_.send_to(to, *ipi);
      ++ipis;
    } else {
      router_.send_marker(to, {vcpu_, MoveMarker::Kind::kFlushed, std::get<NodeId>(item)});
    }
  }
  held_.clear();
  return ipis;
}

std::size_t Departure::cancel(vcpu::Lapic& lapic) {
  std::lock_guard lock(mu_);
  to_ = self_;
  std::size_t ipis = 0;
  for (const auto& item : held_) {
    if (const auto* ipi = std::get_if<vcpu::Ipi>(&item)) {
      lapic.deliver(*ipi);
      ++ipis;
    }
  }
  held_.clear();
  return ipis;
}

bool Departure::is_placed() const {
  std::lock_guard lock(mu_);
  return to_.has_value();
}

void Arrival::admitted(vcpu::Lapic& lapic, NodeId self) {
  std::lock_guard lock(mu_);
  lapic_ = &lapic;
  switched_.insert(self);
}

void Arrival::on_ipi(const vcpu::Ipi& ipi, NodeId origin, vcpu::Lapic& lapic) {
  std::lock_guard lock(mu_);
  if (!switched_.contains(origin)) return;  // sent to A as well, which has it for k
  if (origin == from_ || flushed_.contains(origin)) {
    lapic.deliver(ipi);
    return;
  }
  waiting_[origin].push_back(ipi);
  ++queued_;
}

void Arrival::release_locked(NodeId origin) {
  auto it = waiting_.find(origin);
  if (it == waiting_.end()) return;
  if (lapic_)
    for (const auto& ipi : it->second) lapic_->deliver(ipi);
  waiting_.erase(it);
}

void Arrival::on_marker(MoveMarker::Kind kind, NodeId origin) {
  std::lock_guard lock(mu_);
  if (kind == MoveMarker::Kind::kSwitched) switched_.insert(origin);
  if (kind == MoveMarker::Kind::kFlushed) {
    flushed_.insert(origin);
    release_locked(origin);
  }
  if (complete_locked()) done_.notify_all();
}

bool Arrival::complete_locked() const {
  for (std::uint32_t n = 0; n < nodes_; ++n) {
    NodeId id{n};
    if (!switched_.contains(id) || (id != from_ && !flushed_.contains(id))) return false;
  }
  return true;
}

bool Arrival::wait_complete(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (done_.wait_for(lock, timeout, [this] { return complete_locked(); })) return true;
  log::get("machine")->warn("vCPU {}: not every node confirmed its move from node {} within {} ms",
                            vcpu_, from_.value(), timeout.count());
  while (!waiting_.empty()) release_locked(waiting_.begin()->first);
  for (std::uint32_t n = 0; n < nodes_; ++n) {
    switched_.insert(NodeId{n});
    flushed_.insert(NodeId{n});
  }
  return false;
}

std::uint64_t Arrival::queued() const {
  std::lock_guard lock(mu_);
  return queued_;
}

}  // namespace ssi::multinode
