#include "checkpoint_driver.hpp"

#include <fmt/format.h>

#include "node_barrier.hpp"

namespace ssi::coord {

namespace {

constexpr std::chrono::seconds kQuiesceLimit{5};

}  // namespace

struct CheckpointDriver::Run {
  enum class Step { kPausing, kQuiescing, kSaving, kWriting, kDone };
  CheckpointOrder order;
  SteadyTime t0 = now();
  SteadyTime quiesce_until{};
  Step step = Step::kPausing;
  std::size_t pending = 0;  // replies awaited in this step
  bool in_flight = false;   // a poll's request (sample, written) is out
  std::optional<std::string> error;
  std::vector<VcpuBytes> states;
  std::uint64_t sent = 0, received = 0;  // IPI frames between nodes, this round
  CheckpointResult result;
};

CheckpointDriver::CheckpointDriver(kj::TaskSet& tasks, std::function<std::vector<Node::Client*>()> nodes,
                                   std::function<void(const std::string&)> fail)
    : tasks_(tasks), nodes_(std::move(nodes)), fail_(std::move(fail)) {}

CheckpointDriver::~CheckpointDriver() = default;

void CheckpointDriver::start(CheckpointOrder order) {
  run_ = std::make_shared<Run>();
  run_->order = std::move(order);
  run_->result.dir = run_->order.dir;
  for (Node::Client* c : nodes_())
    if (!c) return finish(make_error(Errc::kDisconnected, "a node of the machine is gone"));
  pause_all();
}

// Step 1, the barrier: every node parks every vCPU at an exit.
void CheckpointDriver::pause_all() {
  auto run = run_;
  run->pending = 1;
  pause_nodes(tasks_, nodes_(), [this, run](std::optional<Error> error) {
    run->pending = 0;
    if (run != run_) return;
    if (error) return finish(std::move(*error));
    run->result.pause_us = us_since(run->t0);
    run->step = Run::Step::kQuiescing;
    run->quiesce_until = now() + kQuiesceLimit;
  });
}

void CheckpointDriver::poll() {
  if (!run_ || run_->in_flight || run_->pending != 0) return;
  if (run_->step == Run::Step::kQuiescing) return quiesce();
  if (run_->step == Run::Step::kWriting) return written();
}

// Step 2: every IPI frame a node queued for another has been received there
// (sums over all nodes; merged NMIs never leave), so none is in flight
// outside the states about to be saved.
void CheckpointDriver::quiesce() {
  auto run = run_;
  auto nodes = nodes_();
  run->in_flight = true;
  run->pending = nodes.size();
  run->sent = run->received = 0;
  for (std::size_t id = 0; id < nodes.size(); ++id) {
    tasks_.add(nodes[id]->sampleRequest().send().then(
        [this, run](capnp::Response<Node::SampleResults>&& r) {
          for (auto c : r.getStats()) {
            std::string_view name = c.getName().cStr();
            if (name == "ipis_sent_remote") run->sent += c.getValue();
            if (name == "ipis_merged") run->sent -= c.getValue();
            if (name == "ipis_received_remote") run->received += c.getValue();
          }
          if (--run->pending != 0 || run != run_) return;
          run->in_flight = false;
          if (run->sent == run->received) return save_all();
          if (now() > run->quiesce_until)
            finish(make_error(Errc::kTimeout,
                              fmt::format("{} IPIs between nodes still in flight after {} s",
                                          run->sent - run->received, kQuiesceLimit.count())));
        },
        [this, run](kj::Exception&& e) {
          if (--run->pending == 0 && run == run_) finish(make_error(Errc::kDisconnected, e.getDescription().cStr()));
        }));
  }
}

// Step 3: every node's vCPU states.
void CheckpointDriver::save_all() {
  auto run = run_;
  auto nodes = nodes_();
  run->step = Run::Step::kSaving;
  run->pending = nodes.size();
  for (std::size_t id = 0; id < nodes.size(); ++id) {
    tasks_.add(nodes[id]->checkpointSaveRequest().send().then(
        [this, run, id](capnp::Response<Node::CheckpointSaveResults>&& r) {
          if (r.getError().size() != 0 && !run->error)
            run->error = fmt::format("node {}: {}", id, r.getError().cStr());
          for (auto v : r.getStates()) {
            auto d = v.getState();
            run->states.push_back({v.getVcpu(), std::vector<std::uint8_t>(d.begin(), d.end())});
          }
          if (--run->pending != 0 || run != run_) return;
          if (run->error) return finish(make_error(Errc::kProtocol, *run->error));
          write();
        },
        [this, run](kj::Exception&& e) {
          if (--run->pending == 0 && run == run_) finish(make_error(Errc::kDisconnected, e.getDescription().cStr()));
        }));
  }
}

// Step 4: node 0 writes RAM (read through its DSM mapping), its devices and
// these states; it answers at once and works in the background.
void CheckpointDriver::write() {
  auto run = run_;
  auto nodes = nodes_();
  auto req = nodes[0]->checkpointWriteRequest();
  req.setDir(run->order.dir);
  req.setNodes(static_cast<std::uint32_t>(nodes.size()));
  auto list = req.initStates(static_cast<unsigned>(run->states.size()));
  for (unsigned i = 0; i < run->states.size(); ++i) {
    list[i].setVcpu(run->states[i].vcpu);
    list[i].setState(kj::arrayPtr(run->states[i].state.data(), run->states[i].state.size()));
  }
  run->pending = 1;
  tasks_.add(req.send().then(
      [this, run](capnp::Response<Node::CheckpointWriteResults>&& r) {
        run->pending = 0;
        if (run != run_) return;
        if (r.getError().size() != 0) return finish(make_error(Errc::kSystem, fmt::format("node 0: {}", r.getError().cStr())));
        run->step = Run::Step::kWriting;
      },
      [this, run](kj::Exception&& e) {
        run->pending = 0;
        if (run == run_) finish(make_error(Errc::kDisconnected, e.getDescription().cStr()));
      }));
}

void CheckpointDriver::written() {
  auto run = run_;
  run->in_flight = true;
  tasks_.add(nodes_()[0]->checkpointWrittenRequest().send().then(
      [this, run](capnp::Response<Node::CheckpointWrittenResults>&& r) {
        run->in_flight = false;
        if (run != run_ || !r.getDone()) return;
        if (r.getError().size() != 0) return finish(make_error(Errc::kSystem, fmt::format("node 0: {}", r.getError().cStr())));
        run->result.summary = r.getSummary().cStr();
        finish(std::nullopt);
      },
      [this, run](kj::Exception&& e) {
        run->in_flight = false;
        if (run == run_) finish(make_error(Errc::kDisconnected, e.getDescription().cStr()));
      }));
}

// Step 5: resume every node, or stop the machine (exit code 0 after a
// checkpoint; the failure's code after a failed one that was to stop it).
void CheckpointDriver::finish(std::optional<Error> error) {
  auto run = std::move(run_);
  run->step = Run::Step::kDone;
  bool stop = !run->order.resume;
  if (error) {
    error->message = fmt::format("checkpoint to {} failed: {}", run->order.dir, error->message);
    if (stop) fail_(error->message);
  }
  resume_nodes(tasks_, nodes_(), stop);
  run->result.total_us = us_since(run->t0);
  if (run->order.done) {
    if (error) run->order.done(std::move(*error));
    else run->order.done(run->result);
  }
}

}  // namespace ssi::coord
