#include "move_driver.hpp"

#include <fmt/format.h>

namespace ssi::coord {

MoveDriver::MoveDriver(kj::TaskSet& tasks, std::function<std::vector<Node::Client*>()> nodes,
                       std::function<void(const std::string&)> fail)
    : tasks_(tasks), nodes_(std::move(nodes)), fail_(std::move(fail)) {}

void MoveDriver::finish(const std::shared_ptr<MoveOrder>& order, Result<MoveResult> r) {
  busy_ = false;
  order->done(std::move(r));
}

std::uint32_t MoveDriver::node_of(std::uint32_t vcpu, const MachineConfig& config) {
  if (placement_.empty()) {  // round robin over the nodes that are not standby
    placement_ = config.vcpu_node;
    for (auto i = static_cast<std::uint32_t>(placement_.size()); i < config.vcpus; ++i)
      placement_.push_back(i % config.home_nodes());
  }
  return vcpu < placement_.size() ? placement_[vcpu] : ~0u;
}

void MoveDriver::start(MoveOrder next, const MachineConfig& config) {
  auto order = std::make_shared<MoveOrder>(std::move(next));
  (void)node_of(0, config);
  auto nodes = nodes_();
  if (order->vcpu >= placement_.size() || order->to >= nodes.size())
    return order->done(make_error(Errc::kInvalidArgument,
                                  fmt::format("no vCPU {} or node {}: the machine has {} vCPUs on {} nodes",
                                              order->vcpu, order->to, placement_.size(), nodes.size())));
  auto res = std::make_shared<MoveResult>(MoveResult{order->vcpu, placement_[order->vcpu], order->to});
  if (res->from == res->to)
    return order->done(make_error(Errc::kInvalidArgument,
                                  fmt::format("vCPU {} already runs on node {}", res->vcpu, res->to)));
  Node::Client* from = nodes[res->from];
  Node::Client* to = nodes[res->to];
  if (!from || !to) return order->done(make_error(Errc::kInvalidArgument, "a node of that move is gone"));
  busy_ = true;
  auto t0 = now();
  auto em = from->emigrateRequest();
  em.setVcpu(res->vcpu);
  tasks_.add(em.send().then(
      [this, from, to, order, res, t0](capnp::Response<Node::EmigrateResults>&& r) -> kj::Promise<void> {
        if (r.getError().size() != 0) {
          finish(order, make_error(Errc::kDisconnected, fmt::format("node {}: {}", res->from, r.getError().cStr())));
          return kj::READY_NOW;
        }
        res->state_bytes = r.getState().size();
        auto im = to->immigrateRequest();
        im.setVcpu(res->vcpu);
        im.setState(r.getState());
        auto back = from->immigrateRequest();  // if `to` cannot take it
        back.setVcpu(res->vcpu);
        back.setState(r.getState());
        return im.send().then([this, order, res, t0, back = kj::mv(back)](
                                  capnp::Response<Node::ImmigrateResults>&& r2) mutable {
          return immigrated(kj::mv(r2), kj::mv(back), order, res, t0);
        });
      },
      [this, order](kj::Exception&& e) {
        finish(order, make_error(Errc::kDisconnected, e.getDescription().cStr()));
      }));
}

// The target has it: every node learns the new placement; the order is
// answered once all of them have.
kj::Promise<void> MoveDriver::immigrated(capnp::Response<Node::ImmigrateResults>&& r, ImmigrateRequest back,
                                         std::shared_ptr<MoveOrder> order, std::shared_ptr<MoveResult> res,
                                         SteadyTime t0) {
  if (!r.getOk()) return undo(kj::mv(back), order, res, r.getError().cStr());
  res->pause_us = us_since(t0);
  placement_[res->vcpu] = res->to;
  auto nodes = nodes_();
  auto left = std::make_shared<std::size_t>(0);
  for (Node::Client* c : nodes)
    if (c) ++*left;
  auto one_done = [this, order, res, t0, left] {
    if (--*left != 0) return;
    res->total_us = us_since(t0);
    finish(order, *res);
  };
  for (Node::Client* c : nodes) {
    if (!c) continue;
    auto pl = c->placedRequest();
    pl.setVcpu(res->vcpu);
    pl.setNode(res->to);
    tasks_.add(pl.send().then([one_done](auto&&) { one_done(); }, [one_done](kj::Exception&&) { one_done(); }));
  }
  return kj::READY_NOW;
}

// The node a vCPU left takes it back when the node it went to could not:
// the move fails, the machine goes on; only if that fails too it stops.
kj::Promise<void> MoveDriver::undo(ImmigrateRequest back, std::shared_ptr<MoveOrder> order,
                                   std::shared_ptr<MoveResult> res, std::string why) {
  why = fmt::format("node {} could not take vCPU {}: {}", res->to, res->vcpu, why);
  return back.send().then([this, order, res, why](capnp::Response<Node::ImmigrateResults>&& r) {
    if (r.getOk())
      return finish(order, make_error(Errc::kDisconnected,
                                      fmt::format("{}; it continues on node {}", why, res->from)));
    std::string all = fmt::format("{}, nor node {} again: {}", why, res->from, r.getError().cStr());
    fail_(all);
    finish(order, make_error(Errc::kDisconnected, all));
  });
}

}  // namespace ssi::coord
