#include "retire_driver.hpp"

#include <fmt/format.h>

#include "node_barrier.hpp"

namespace ssi::coord {

namespace {

constexpr std::chrono::seconds kStepLimit{300};  // pre-copy or handover under emulation

}  // namespace

struct RetireDriver::Run {
  enum class Step { kMoving, kPrecopy, kPausing, kHandover, kTelling, kDone };
  RetireOrder order;
  std::uint32_t from = 0, to = 0;
  Step step = Step::kMoving;
  SteadyTime t0 = now(), step_t0 = now(), paused_at{};
  bool in_flight = false;   // a request of this step is out
  std::size_t pending = 0;  // replies awaited (pause, tell)
  RetireResult result;
};

RetireDriver::RetireDriver(kj::TaskSet& tasks, std::function<std::vector<Node::Client*>()> nodes,
                           MoveDriver& moves, const MachineConfig& config,
                           std::function<void(std::uint32_t)> retired,
                           std::function<void(const std::string&)> fail)
    : tasks_(tasks), nodes_(std::move(nodes)), moves_(moves), config_(config),
      retired_(std::move(retired)), fail_(std::move(fail)), gone_(config.nodes, false),
      taken_(config.nodes, false) {}

RetireDriver::~RetireDriver() = default;

void RetireDriver::start(RetireOrder order) {
  auto refuse = [&order](std::string why) {
    if (order.done) order.done(make_error(Errc::kInvalidArgument, std::move(why)));
  };
  const std::uint32_t n = config_.nodes;
  if (order.from == 0) return refuse("node 0 holds the devices: it cannot retire");
  if (order.from >= n || gone_[order.from])
    return refuse(fmt::format("no node {} in this machine ({} nodes{})", order.from, n,
                              order.from < n ? ", it retired already" : ""));
  std::optional<std::uint32_t> to = order.to;
  if (!to) {
    // A standby that took a share earlier is no standby any more: it runs
    // vCPUs and homes pages now, so the first one still free is wanted.
    for (std::uint32_t b = config_.home_nodes(); b < n && !to; ++b)
      if (!gone_[b] && !taken_[b] && b != order.from) to = b;
    if (!to) return refuse(fmt::format("no standby node left to take node {}'s share (ssi run --standby S)", order.from));
  }
  if (*to >= n || gone_[*to] || *to == order.from)
    return refuse(fmt::format("node {} cannot take node {}'s share", *to, order.from));
  auto nodes = nodes_();
  for (std::uint32_t id = 0; id < n; ++id)
    if (!gone_[id] && !nodes[id]) return refuse(fmt::format("node {} of the machine is gone", id));
  run_ = std::make_shared<Run>();
  run_->from = order.from;
  run_->to = *to;
  run_->order = std::move(order);
  run_->result.from = run_->from;
  run_->result.to = run_->to;
}

void RetireDriver::poll() {
  if (!run_ || run_->in_flight || run_->pending != 0) return;
  switch (run_->step) {
    case Run::Step::kMoving: return next_move();
    case Run::Step::kPrecopy: return precopy();
    case Run::Step::kPausing: return pause_all();
    case Run::Step::kHandover: return hand_over();
    case Run::Step::kTelling: return tell_all();
    case Run::Step::kDone: return;
  }
}

// Step 1: the retiring node's vCPUs move to the new node, one at a time.
void RetireDriver::next_move() {
  if (moves_.busy()) return;
  auto run = run_;
  for (std::uint32_t k = 0; k < config_.vcpus; ++k) {
    if (moves_.node_of(k, config_) != run->from) continue;
    run->in_flight = true;
    moves_.start({k, run->to, [this, run](Result<MoveResult> r) {
                    run->in_flight = false;
                    if (run != run_) return;
                    if (!r.ok()) return finish(std::move(r).error());
                    ++run->result.vcpus_moved;
                    run->result.moves_us += r->pause_us;
                  }},
                 config_);
    return;
  }
  // Step 2 always runs: the new node first waits until the moves settled
  // (every IPI the retiring node held is passed on); then, with pre-copy,
  // it reads the pages.
  run->step = Run::Step::kPrecopy;
  run->step_t0 = now();
  auto req = nodes_()[run->to]->retirePrecopyRequest();
  req.setFromNode(run->from);
  req.setPages(run->order.precopy);
  expect_started(run->to, req.send());
}

// A background job's start (pre-copy, handover): a reply with an error, or
// none, ends the retirement.
template <class Response>
void RetireDriver::expect_started(std::uint32_t node, kj::Promise<Response>&& reply) {
  auto run = run_;
  run->in_flight = true;
  tasks_.add(reply.then(
      [this, run, node](Response&& r) {
        run->in_flight = false;
        if (run == run_ && r.getError().size() != 0)
          finish(make_error(Errc::kProtocol, fmt::format("node {}: {}", node, r.getError().cStr())));
      },
      [this, run](kj::Exception&& e) {
        run->in_flight = false;
        if (run == run_) finish(make_error(Errc::kDisconnected, e.getDescription().cStr()));
      }));
}

// A background job (pre-copy on the new node, handover on the retiring
// one): polled until done; `done(summary)` then.
void RetireDriver::status(std::uint32_t node, std::function<void(std::string)> done) {
  auto run = run_;
  if (now() - run->step_t0 > kStepLimit)
    return finish(make_error(Errc::kTimeout, fmt::format("node {} did not finish within {} s", node,
                                                         kStepLimit.count())));
  run->in_flight = true;
  tasks_.add(nodes_()[node]->retireStatusRequest().send().then(
      [this, run, node, done](capnp::Response<Node::RetireStatusResults>&& r) {
        run->in_flight = false;
        if (run != run_ || !r.getDone()) return;
        if (r.getError().size() != 0)
          return finish(make_error(Errc::kProtocol, fmt::format("node {}: {}", node, r.getError().cStr())));
        done(r.getSummary().cStr());
      },
      [this, run](kj::Exception&& e) {
        run->in_flight = false;
        if (run == run_) finish(make_error(Errc::kDisconnected, e.getDescription().cStr()));
      }));
}

// Step 2: the new node reads every page homed on the retiring one.
void RetireDriver::precopy() {
  auto run = run_;
  status(run->to, [this, run](std::string summary) {
    run->result.precopy = std::move(summary);
    if (run->order.precopy) run->result.precopy_us = us_since(run->step_t0);
    run->step = Run::Step::kPausing;
  });
}

// Step 3: the checkpoint's barrier: every node parks every vCPU; then the
// retiring node starts its handover (a background job there).
void RetireDriver::pause_all() {
  auto run = run_;
  run->paused_at = now();
  run->pending = 1;
  pause_nodes(tasks_, nodes_(), [this, run](std::optional<Error> error) {
    run->pending = 0;
    if (run != run_) return;
    if (error) return finish(std::move(*error));
    run->step = Run::Step::kHandover;
    run->step_t0 = now();
    auto req = nodes_()[run->from]->retireHandoverRequest();
    req.setToNode(run->to);
    expect_started(run->from, req.send());
  });
}

// Step 4: the retiring node hands its share over (polled).
void RetireDriver::hand_over() {
  auto run = run_;
  status(run->from, [run](std::string summary) {
    run->result.handover = std::move(summary);
    run->step = Run::Step::kTelling;
  });
}

// Step 5: every other node learns that the retiring node left; then resume.
void RetireDriver::tell_all() {
  auto run = run_;
  auto nodes = nodes_();
  run->pending = 0;
  for (std::size_t id = 0; id < nodes.size(); ++id) run->pending += nodes[id] && id != run->from ? 1 : 0;
  for (std::size_t id = 0; id < nodes.size(); ++id) {
    if (!nodes[id] || id == run->from) continue;
    auto req = nodes[id]->nodeRetiredRequest();
    req.setNode(run->from);
    req.setToNode(run->to);
    auto one = [this, run] {
      if (--run->pending == 0 && run == run_) finish(std::nullopt);
    };
    tasks_.add(req.send().then([one](auto&&) { one(); }, [one](kj::Exception&&) { one(); }));
  }
}

// Resume every node; after a handover the retiring node is stopped (it
// exits 0) and no longer part of the machine.
void RetireDriver::finish(std::optional<Error> error) {
  auto run = std::move(run_);
  const bool handed = run->step == Run::Step::kTelling;
  const bool paused = run->step == Run::Step::kHandover || handed;
  run->step = Run::Step::kDone;
  if (handed) {
    gone_[run->from] = true;
    taken_[run->to] = true;
    retired_(run->from);  // from here on nodes_() has no client for it
  }
  if (paused || run->paused_at != SteadyTime{}) {
    resume_nodes(tasks_, nodes_(), /*stop=*/false);
    run->result.pause_us = us_since(run->paused_at);
  }
  if (error && paused && !handed) {
    // The handover may have gone part of the way: the memory is in doubt.
    error->message = fmt::format("retiring node {} failed at the barrier: {}", run->from, error->message);
    fail_(error->message);
  } else if (error) {
    error->message = fmt::format("retiring node {} failed: {}", run->from, error->message);
  }
  run->result.total_us = us_since(run->t0);
  if (run->order.done) {
    if (error) run->order.done(std::move(*error));
    else run->order.done(run->result);
  }
}

}  // namespace ssi::coord
