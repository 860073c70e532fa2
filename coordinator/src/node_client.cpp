#include "coordinator/node_client.hpp"

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "convert.hpp"
#include "coordinator/failure_detector.hpp"
#include "stream_auth.hpp"

namespace ssi::coord {
namespace {

// Phase completions arrive from runtime threads; the control loop forwards
// them. Shared with every completion callback: a worker may finish after
// run_node() returned (lost coordinator), and must then write into memory
// that still exists.
struct Completions {
  std::mutex mu;
  std::deque<std::pair<std::uint32_t, PhaseResult>> done;
};

struct NodeState {
  NodeRuntime& runtime;
  FailureDetector coordinator;  // the coordinator's pings
  std::shared_ptr<Completions> completions = std::make_shared<Completions>();
  std::optional<NodeExit> exit;
  std::optional<std::string> send_failed;

  void heard() { coordinator.heard(now()); }
};

class NodeImpl final : public Node::Server {
 public:
  explicit NodeImpl(NodeState& s) : s_(s) {}

  kj::Promise<void> configure(ConfigureContext context) override {
    s_.heard();
    auto r = s_.runtime.configure(from_capnp(context.getParams().getConfig()));
    s_.heard();  // configure() may take long; it is not the coordinator's silence
    context.getResults().setOk(r.ok());
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> runPhase(RunPhaseContext context) override {
    s_.heard();
    std::uint32_t phase = context.getParams().getPhase();
    s_.runtime.run_phase(phase, [c = s_.completions, phase](PhaseResult r) {
      std::lock_guard lock(c->mu);
      c->done.emplace_back(phase, std::move(r));
    });
    return kj::READY_NOW;
  }

  kj::Promise<void> stop(StopContext context) override {
    auto params = context.getParams();
    std::string reason = params.getReason();
    bool failed = params.getFailed();
    s_.runtime.stop(reason, failed);
    if (!s_.exit) s_.exit = NodeExit{exit_status(failed ? ExitCode::kNodeLost : ExitCode::kOk), reason};
    return kj::READY_NOW;
  }

  kj::Promise<void> ping(PingContext) override {
    s_.heard();
    return kj::READY_NOW;
  }

  kj::Promise<void> moveVcpu(MoveVcpuContext context) override {
    context.getResults().setOk(false);
    context.getResults().setError("a move is ordered as emigrate, immigrate, placed");
    return kj::READY_NOW;
  }

  kj::Promise<void> emigrate(EmigrateContext context) override {
    s_.heard();
    auto r = s_.runtime.emigrate(VcpuId{context.getParams().getVcpu()});
    if (!r.ok()) {
      context.getResults().setError(r.error().to_string());
      return kj::READY_NOW;
    }
    context.getResults().setState(kj::arrayPtr(r->data(), r->size()));
    return kj::READY_NOW;
  }

  kj::Promise<void> immigrate(ImmigrateContext context) override {
    s_.heard();
    auto p = context.getParams();
    auto bytes = p.getState();
    auto r = s_.runtime.immigrate(VcpuId{p.getVcpu()}, std::span<const std::uint8_t>(bytes.begin(), bytes.size()));
    context.getResults().setOk(r.ok());
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> placed(PlacedContext context) override {
    auto p = context.getParams();
    s_.runtime.placed(VcpuId{p.getVcpu()}, NodeId{p.getNode()});
    return kj::READY_NOW;
  }

  // Checkpoint (docs/checkpoint.md): thin; the runtime does the work.
  kj::Promise<void> checkpointPause(CheckpointPauseContext context) override {
    s_.heard();
    auto r = s_.runtime.checkpoint_pause(std::chrono::milliseconds(context.getParams().getTimeoutMs()));
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> checkpointSave(CheckpointSaveContext context) override {
    s_.heard();
    auto r = s_.runtime.checkpoint_save();
    if (!r.ok()) {
      context.getResults().setError(r.error().to_string());
      return kj::READY_NOW;
    }
    auto list = context.getResults().initStates(static_cast<unsigned>(r->size()));
    for (unsigned i = 0; i < r->size(); ++i) {
      list[i].setVcpu((*r)[i].vcpu);
      list[i].setState(kj::arrayPtr((*r)[i].state.data(), (*r)[i].state.size()));
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> checkpointWrite(CheckpointWriteContext context) override {
    s_.heard();
    auto p = context.getParams();
    std::vector<VcpuBytes> states;
    for (auto v : p.getStates()) {
      auto d = v.getState();
      states.push_back({v.getVcpu(), std::vector<std::uint8_t>(d.begin(), d.end())});
    }
    auto r = s_.runtime.checkpoint_write(p.getDir(), std::move(states), p.getNodes());
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> checkpointWritten(CheckpointWrittenContext context) override {
    s_.heard();
    auto r = s_.runtime.checkpoint_written();
    if (!r.ok()) {
      context.getResults().setDone(true);
      context.getResults().setError(r.error().to_string());
      return kj::READY_NOW;
    }
    context.getResults().setDone(r->done);
    context.getResults().setSummary(r->summary);
    return kj::READY_NOW;
  }

  kj::Promise<void> checkpointResume(CheckpointResumeContext context) override {
    s_.heard();
    s_.runtime.checkpoint_resume(context.getParams().getStop());
    return kj::READY_NOW;
  }

  // Retiring a node (docs/mobility.md): thin; the runtime does the work.
  kj::Promise<void> retirePrecopy(RetirePrecopyContext context) override {
    s_.heard();
    auto p = context.getParams();
    auto r = s_.runtime.retire_precopy(NodeId{p.getFromNode()}, p.getPages());
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> retireHandover(RetireHandoverContext context) override {
    s_.heard();
    auto r = s_.runtime.retire_hand_over(NodeId{context.getParams().getToNode()});
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> retireStatus(RetireStatusContext context) override {
    s_.heard();
    auto r = s_.runtime.retire_status();
    auto res = context.getResults();
    if (!r.ok()) {
      res.setDone(true);
      res.setError(r.error().to_string());
      return kj::READY_NOW;
    }
    res.setDone(r->done);
    res.setSummary(r->summary);
    return kj::READY_NOW;
  }

  kj::Promise<void> nodeRetired(NodeRetiredContext context) override {
    s_.heard();
    auto p = context.getParams();
    s_.runtime.node_retired(NodeId{p.getNode()}, NodeId{p.getToNode()});
    return kj::READY_NOW;
  }

  kj::Promise<void> sample(SampleContext context) override {
    s_.heard();
    Counters c = s_.runtime.sample();
    auto list = context.getResults().initStats(static_cast<unsigned>(c.size()));
    for (unsigned i = 0; i < c.size(); ++i) {
      list[i].setName(c[i].first);
      list[i].setValue(c[i].second);
    }
    return kj::READY_NOW;
  }

 private:
  NodeState& s_;
};

class SendErrors final : public kj::TaskSet::ErrorHandler {
 public:
  explicit SendErrors(NodeState& s) : s_(s) {}
  void taskFailed(kj::Exception&& e) override {
    if (!s_.send_failed) s_.send_failed = e.getDescription().cStr();
  }

 private:
  NodeState& s_;
};

NodeExit lost(NodeState& s, const std::string& why) {
  std::string msg = fmt::format("lost the coordinator: {}", why);
  s.runtime.stop(msg, true);
  return NodeExit{exit_status(ExitCode::kNodeLost), msg};
}

// `p`, or a kj::Exception saying what did not arrive within `limit`.
template <typename T>
kj::Promise<T> within(kj::Timer& timer, std::chrono::milliseconds limit, kj::Promise<T> p, std::string what) {
  return p.exclusiveJoin(timer.afterDelay(limit.count() * kj::MILLISECONDS).then([what, limit]() -> kj::Promise<T> {
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str(fmt::format("no {} within {} ms", what, limit.count()).c_str()));
  }));
}

void forward_completions(NodeState& state, Coordinator::Client& coordinator, NodeId id, kj::TaskSet& sends) {
  std::deque<std::pair<std::uint32_t, PhaseResult>> done;
  {
    std::lock_guard lock(state.completions->mu);
    done.swap(state.completions->done);
  }
  // Not waited for here: the heartbeat check below must keep running while
  // the coordinator takes its time (or is frozen).
  for (auto& [phase, result] : done) {
    auto req = coordinator.finishedRequest();
    req.setId(id.value());
    req.setPhase(phase);
    to_capnp(result, req.initResult());
    sends.add(req.send().ignoreResult());
  }
}

}  // namespace

NodeExit run_node(const NodeOptions& options, NodeRuntime& runtime) {
  NodeState state{runtime, FailureDetector(detector_options(options.timing.failure_timeout)), std::make_shared<Completions>(), std::nullopt, std::nullopt};
  try {
    auto io = kj::setupAsyncIo();
    auto& ws = io.waitScope;
    auto& timer = io.provider->getTimer();
    const auto limit = options.timing.join_timeout;
    auto address = within(timer, limit, io.provider->getNetwork().parseAddress(options.coordinator),
                          "address for " + options.coordinator)
                       .wait(ws);
    auto stream = within(timer, limit, address->connect(), "connection to " + options.coordinator).wait(ws);
    try {
      authenticate_to_coordinator(*stream, options.secret, timer, limit.count() * kj::MILLISECONDS).wait(ws);
    } catch (const kj::Exception& e) {
      // Another machine's secret is a setup mistake (exit 2), not a lost peer.
      std::string why = e.getDescription().cStr();
      if (why.find("failed authentication") != std::string::npos)
        return NodeExit{exit_status(ExitCode::kError), why};
      throw;
    }
    capnp::TwoPartyClient client(*stream);
    auto coordinator = client.bootstrap().castAs<Coordinator>();

    auto join = coordinator.joinRequest();
    to_capnp(options.info, join.initInfo());
    join.setNode(kj::heap<NodeImpl>(state));
    kj::Promise<capnp::Response<Coordinator::JoinResults>> joining = join.send();
    auto joined = within(timer, limit, kj::mv(joining), "answer to join").wait(ws);
    if (!joined.getOk())
      return NodeExit{exit_status(ExitCode::kError), fmt::format("coordinator refused node {}: {}", options.info.id,
                                     joined.getError().cStr())};

    SendErrors errors(state);
    kj::TaskSet sends(errors);
    state.heard();
    while (!state.exit) {
      timer.afterDelay(kPollMs * kj::MILLISECONDS).wait(ws);
      forward_completions(state, coordinator, options.info.id, sends);
      if (state.send_failed && !state.exit) return lost(state, *state.send_failed);
      auto t = now();
      if (state.coordinator.suspect(t))
        return lost(state, fmt::format("no heartbeat for {} ms (deadline {} ms)",
                                       state.coordinator.silent_for(t).count(),
                                       state.coordinator.deadline().count()));
    }
    // Let the reply to stop() leave before the connection closes.
    timer.afterDelay(kPollMs * kj::MILLISECONDS).wait(ws);
  } catch (const kj::Exception& e) {
    if (state.exit) return *state.exit;
    return lost(state, e.getDescription().cStr());
  }
  return *state.exit;
}

}  // namespace ssi::coord
