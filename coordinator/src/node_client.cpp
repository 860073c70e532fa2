#include "coordinator/node_client.hpp"

#include <deque>
#include <mutex>
#include <optional>

#include <capnp/ez-rpc.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <fmt/format.h>

#include "convert.hpp"

namespace ssi::coord {
namespace {



// Phase completions arrive from runtime threads; the control loop forwards them.
struct Completions {
  std::mutex mu;
  std::deque<std::pair<std::uint32_t, PhaseResult>> done;
};

struct NodeState {
  NodeRuntime& runtime;
  Completions completions;
  SteadyTime last_contact = now();
  std::optional<NodeExit> exit;
};

class NodeImpl final : public Node::Server {
 public:
  explicit NodeImpl(NodeState& s) : s_(s) {}

  kj::Promise<void> configure(ConfigureContext context) override {
    s_.last_contact = now();
    auto r = s_.runtime.configure(from_capnp(context.getParams().getConfig()));
    context.getResults().setOk(r.ok());
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> runPhase(RunPhaseContext context) override {
    s_.last_contact = now();
    std::uint32_t phase = context.getParams().getPhase();
    Completions* c = &s_.completions;
    s_.runtime.run_phase(phase, [c, phase](PhaseResult r) {
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
    if (!s_.exit) s_.exit = NodeExit{failed ? 3 : 0, reason};
    return kj::READY_NOW;
  }

  kj::Promise<void> ping(PingContext) override {
    s_.last_contact = now();
    return kj::READY_NOW;
  }

  kj::Promise<void> moveVcpu(MoveVcpuContext context) override {
    auto p = context.getParams();
    auto r = s_.runtime.move_vcpu(VcpuId{p.getVcpu()}, NodeId{p.getToNode()});
    context.getResults().setOk(r.ok());
    if (!r.ok()) context.getResults().setError(r.error().to_string());
    return kj::READY_NOW;
  }

  kj::Promise<void> sample(SampleContext context) override {
    s_.last_contact = now();
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

NodeExit lost(NodeState& s, const std::string& why) {
  std::string msg = fmt::format("lost the coordinator: {}", why);
  s.runtime.stop(msg, true);
  return NodeExit{3, msg};
}

}  // namespace

NodeExit run_node(const NodeOptions& options, NodeRuntime& runtime) {
  NodeState state{runtime, {}, now(), std::nullopt};
  try {
    capnp::EzRpcClient client(options.coordinator.c_str());
    auto& ws = client.getWaitScope();
    auto& timer = client.getIoProvider().getTimer();
    auto coordinator = client.getMain<Coordinator>();

    auto join = coordinator.joinRequest();
    to_capnp(options.info, join.initInfo());
    join.setNode(kj::heap<NodeImpl>(state));
    auto joined = join.send().wait(ws);
    if (!joined.getOk())
      return NodeExit{2, fmt::format("coordinator refused node {}: {}", options.info.id,
                                     joined.getError().cStr())};

    state.last_contact = now();
    while (!state.exit) {
      timer.afterDelay(kPollMs * kj::MILLISECONDS).wait(ws);
      std::deque<std::pair<std::uint32_t, PhaseResult>> done;
      {
        std::lock_guard lock(state.completions.mu);
        done.swap(state.completions.done);
      }
      for (auto& [phase, result] : done) {
        auto req = coordinator.finishedRequest();
        req.setId(options.info.id.value());
        req.setPhase(phase);
        to_capnp(result, req.initResult());
        req.send().wait(ws);
      }
      if (now() - state.last_contact > options.timing.failure_timeout)
        return lost(state, fmt::format("no heartbeat for {} ms",
                                       options.timing.failure_timeout.count()));
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
