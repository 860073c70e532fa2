#include "coordinator/coordinator.hpp"

#include <optional>

#include <kj/async-io.h>
#include <kj/timer.h>
#include <fmt/format.h>
#include <kj/async.h>

#include "base/clock.hpp"
#include "base/exit_code.hpp"
#include "base/log.hpp"
#include "checkpoint_driver.hpp"
#include "control_server.hpp"
#include "move_driver.hpp"
#include "retire_driver.hpp"
#include "convert.hpp"
#include "coordinator/failure_detector.hpp"

namespace ssi::coord {
namespace {

constexpr int kExitNodeDied = exit_status(ExitCode::kNodeLost);
constexpr int kExitInterrupted = 130;

struct Member {
  NodeInfo info;
  std::optional<Node::Client> client;
  bool dead = false;
  bool retired = false;  // it handed its share over and left (docs/mobility.md)
  bool ping_in_flight = false;
  SteadyTime ping_sent{};
  FailureDetector pongs;  // replies to our pings
  int finished_phase = -1;
  PhaseResult last;
  bool sample_in_flight = false;
  Counters live;  // the latest Node.sample() answer (live metrics)
};

// Everything the RPC handlers and the driver loop share (one thread).
struct State {
  const CoordinatorOptions& opt;
  std::vector<Member> members;
  std::uint32_t joined = 0;
  bool configuring = false;  // joins are refused from here on
  std::optional<std::string> failure;
  int failure_code = 0;
  std::optional<int> guest_exit;  // the guest ended the machine with this code

  explicit State(const CoordinatorOptions& o) : opt(o), members(o.config.nodes) {}

  void event(const std::string& line) const {
    if (opt.on_event) opt.on_event(line);
  }
  void fail(int code, std::string why) {
    if (failure) return;
    event(why);
    failure = std::move(why);
    failure_code = code;
  }
  void node_died(Member& m, const std::string& why) {
    if (m.dead || m.retired) return;
    m.dead = true;
    fail(kExitNodeDied, fmt::format("node {} ({}, pid {}) died: {}", m.info.id, m.info.host,
                                    m.info.pid, why));
  }
};

std::string finished_message(const State& s) {
  return s.guest_exit ? fmt::format("machine finished: the guest exited with code {}", *s.guest_exit)
                      : "machine finished";
}

class CoordinatorImpl final : public Coordinator::Server {
 public:
  explicit CoordinatorImpl(State& s) : s_(s) {}

  kj::Promise<void> join(JoinContext context) override {
    auto params = context.getParams();
    NodeInfo info = from_capnp(params.getInfo());
    std::string error = validate(info);
    auto results = context.getResults();
    results.setOk(error.empty());
    results.setError(error);
    if (!error.empty()) {
      s_.event(fmt::format("refused node {} from {}: {}", info.id, info.host, error));
      return kj::READY_NOW;
    }
    Member& m = s_.members[info.id.value()];
    m.info = info;
    m.pongs = FailureDetector(detector_options(s_.opt.timing.failure_timeout));
    m.client = params.getNode();
    ++s_.joined;
    s_.event(fmt::format("node {} joined from {} (pid {}), {}/{}", info.id, info.host, info.pid,
                         s_.joined, s_.members.size()));
    return kj::READY_NOW;
  }

  kj::Promise<void> finished(FinishedContext context) override {
    auto params = context.getParams();
    std::uint32_t id = params.getId();
    if (id >= s_.members.size() || !s_.members[id].client) return kj::READY_NOW;
    Member& m = s_.members[id];
    m.finished_phase = static_cast<int>(params.getPhase());
    m.last = from_capnp(params.getResult());
    return kj::READY_NOW;
  }

  kj::Promise<void> ping(PingContext) override { return kj::READY_NOW; }

 private:
  std::string validate(const NodeInfo& info) const {
    if (info.version != s_.opt.version)
      return fmt::format("version mismatch: node has ssi {}, coordinator has ssi {}",
                         info.version, s_.opt.version);
    if (info.id.value() >= s_.members.size())
      return fmt::format("node id {} out of range: this machine has {} nodes", info.id,
                         s_.members.size());
    if (s_.members[info.id.value()].client)
      return fmt::format("node id {} has already joined", info.id);
    if (s_.configuring) return "the machine has already started";
    return {};
  }

  State& s_;
};

class ErrorSink final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&&) override {}  // each task reports its own errors
};

// Drives the machine: joins, config, phases, stop. One kj event loop.
class Driver {
 public:
  Driver(State& s, kj::WaitScope& ws, kj::Timer& timer)
      : s_(s), ws_(ws), timer_(timer), tasks_(sink_),
        moves_(tasks_, [this] { return clients(); }, [this](const std::string& why) { s_.fail(1, why); }),
        checkpoint_(tasks_, [this] { return clients(); }, [this](const std::string& why) { s_.fail(2, why); }),
        retire_(tasks_, [this] { return clients(); }, moves_, s_.opt.config,
                [this](std::uint32_t id) { retired(id); }, [this](const std::string& why) { s_.fail(2, why); }) {}

  // Pumps the event loop (with heartbeats) until pred() or a failure / deadline
  // (`limit` 0: none).
  bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit,
                  const char* what) {
    auto deadline = limit.count() > 0 ? now() + limit : decltype(now())::max();
    while (!pred()) {
      if (s_.failure) return false;
      if (s_.opt.interrupted && s_.opt.interrupted->load()) {
        s_.fail(kExitInterrupted, "interrupted: stopping every node");
        return false;
      }
      if (s_.opt.watchdog) {
        if (auto why = s_.opt.watchdog()) {
          s_.fail(kExitNodeDied, *why);
          return false;
        }
      }
      if (now() > deadline) {
        s_.fail(kExitNodeDied, fmt::format("timed out after {} ms waiting for {}",
                                           limit.count(), what));
        return false;
      }
      heartbeat();
      sample();
      moves();
      checkpoints();
      retires();
      timer_.afterDelay(kPollMs * kj::MILLISECONDS).wait(ws_);
    }
    return true;
  }

  void configure_all() {
    s_.configuring = true;
    MachineConfig config = s_.opt.config;
    config.peers.clear();
    for (auto& m : s_.members) config.peers.push_back(m.info);
    if (config.tsc_epoch_ns == 0) config.tsc_epoch_ns = realtime_ns();
    auto replies = std::make_shared<std::uint32_t>(0);
    for (auto& m : s_.members) {
      auto req = m.client->configureRequest();
      to_capnp(config, req.initConfig());
      tasks_.add(req.send().then(
          [this, &m, replies](capnp::Response<Node::ConfigureResults>&& r) {
            if (!r.getOk())
              s_.fail(2, fmt::format("node {} refused the config: {}", m.info.id,
                                     r.getError().cStr()));
            ++*replies;
          },
          [this, &m](kj::Exception&& e) { s_.node_died(m, e.getDescription().cStr()); }));
    }
    wait_until([&] { return *replies == s_.members.size(); }, s_.opt.timing.join_timeout,
               "every node to apply the config");
  }

  void run_phase(std::uint32_t phase) {
    running_phase_ = static_cast<int>(phase);
    for (auto& m : s_.members) {
      auto req = m.client->runPhaseRequest();
      req.setPhase(phase);
      tasks_.add(req.send().ignoreResult().catch_(
          [this, &m](kj::Exception&& e) { s_.node_died(m, e.getDescription().cStr()); }));
    }
    bool ok = wait_until(
        [&] {
          for (auto& m : s_.members)
            if (!m.retired && m.finished_phase < static_cast<int>(phase)) return false;
          return true;
        },
        s_.opt.timing.phase_timeout, "every node to finish the phase");
    if (!ok) return;
    for (auto& m : s_.members) {
      if (m.retired || m.last.exit_code == 0) continue;
      if (m.last.guest_exit) {
        if (!s_.guest_exit) s_.guest_exit = m.last.exit_code;
        continue;
      }
      s_.fail(m.last.exit_code,
              fmt::format("node {} failed phase {}: {}", m.info.id, phase, m.last.message));
    }
  }

  void stop_all(const std::string& reason, bool failed) {
    auto replies = std::make_shared<std::uint32_t>(0);
    std::uint32_t expected = 0;
    for (auto& m : s_.members) {
      if (!m.client || m.dead || m.retired) continue;
      ++expected;
      auto req = m.client->stopRequest();
      req.setReason(reason);
      req.setFailed(failed);
      tasks_.add(req.send().then([replies](auto&&) { ++*replies; },
                                 [replies](kj::Exception&&) { ++*replies; }));
    }
    // Bounded: a node that does not answer is gone anyway.
    auto deadline = now() + std::chrono::seconds(3);
    while (*replies < expected && now() < deadline)
      timer_.afterDelay(kPollMs * kj::MILLISECONDS).wait(ws_);
  }

 private:
  // Live metrics (on_sample): one sample request per node per period; a
  // node that is slow to answer is simply skipped until it does.
  void sample() {
    if (!s_.opt.on_sample || !s_.configuring) return;
    auto t = now();
    if (t - last_sample_ < s_.opt.sample_period) return;
    last_sample_ = t;
    for (auto& m : s_.members) {
      if (!m.client || m.dead || m.retired || m.sample_in_flight) continue;
      m.sample_in_flight = true;
      tasks_.add(m.client->sampleRequest().send().then(
          [this, &m](capnp::Response<Node::SampleResults>&& r) {
            m.sample_in_flight = false;
            m.live.clear();
            for (auto c : r.getStats()) m.live.emplace_back(c.getName().cStr(), c.getValue());
            publish();
          },
          [&m](kj::Exception&&) { m.sample_in_flight = false; }));  // heartbeats judge liveness
    }
  }

  // vCPU moves (move_driver.hpp), never beside a checkpoint.
  void moves() {
    if (!s_.opt.next_move || moves_.busy() || checkpoint_.busy() || retire_.busy() || running_phase_ < 1 || s_.failure) return;
    if (auto next = s_.opt.next_move()) moves_.start(std::move(*next), s_.opt.config);
  }

  // Whole-machine checkpoints (checkpoint_driver.hpp), never beside a move.
  void checkpoints() {
    if (checkpoint_.busy()) return checkpoint_.poll();
    if (!s_.opt.next_checkpoint || moves_.busy() || retire_.busy() || running_phase_ < 1 || s_.failure) return;
    if (auto order = s_.opt.next_checkpoint()) checkpoint_.start(std::move(*order));
  }

  // Node retirements (retire_driver.hpp): its own moves, never beside an
  // ordered move or a checkpoint.
  void retires() {
    if (retire_.busy()) return retire_.poll();
    if (!s_.opt.next_retire || moves_.busy() || checkpoint_.busy() || running_phase_ < 1 || s_.failure) return;
    if (auto order = s_.opt.next_retire()) retire_.start(std::move(*order));
  }

  // Node `id` handed its share over: it stops (exit code 0) and the
  // machine no longer waits for it, pings it or counts it as lost.
  void retired(std::uint32_t id) {
    Member& m = s_.members[id];
    m.retired = true;
    s_.event(fmt::format("node {} retired", id));
    if (s_.opt.on_retired) s_.opt.on_retired(id);
    auto req = m.client->stopRequest();
    req.setReason("retired: its share went to another node");
    req.setFailed(false);
    tasks_.add(req.send().ignoreResult().catch_([](kj::Exception&&) {}));
  }
  std::vector<Node::Client*> clients() {
    std::vector<Node::Client*> out;
    for (auto& m : s_.members) out.push_back(m.client && !m.dead && !m.retired ? &*m.client : nullptr);
    return out;
  }

  void publish() {
    std::vector<NodeReport> nodes;
    for (auto& m : s_.members) nodes.push_back({m.info, PhaseResult{0, "", m.live}});
    s_.opt.on_sample(nodes);
  }

  void heartbeat() {
    auto t = now();
    for (auto& m : s_.members) {
      if (!m.client || m.dead || m.retired) continue;
      if (m.pongs.suspect(t)) {
        s_.node_died(m, fmt::format("no heartbeat for {} ms (deadline {} ms)", m.pongs.silent_for(t).count(),
                                    m.pongs.deadline().count()));
        continue;
      }
      if (m.ping_in_flight) continue;
      if (t - m.ping_sent < s_.opt.timing.heartbeat) continue;
      m.ping_in_flight = true;
      m.ping_sent = t;
      tasks_.add(m.client->pingRequest().send().then(
          [&m](auto&&) {
            m.ping_in_flight = false;
            m.pongs.heard(now());
          },
          [this, &m](kj::Exception&& e) { s_.node_died(m, e.getDescription().cStr()); }));
    }
  }

  State& s_;
  kj::WaitScope& ws_;
  kj::Timer& timer_;
  ErrorSink sink_;
  kj::TaskSet tasks_;
  SteadyTime last_sample_{};
  int running_phase_ = -1;
  MoveDriver moves_;              // after tasks_, which they add to
  CheckpointDriver checkpoint_;
  RetireDriver retire_;
};

}  // namespace

Result<Outcome> run_coordinator(const CoordinatorOptions& options) {
  if (options.config.nodes == 0) return make_error(Errc::kInvalidArgument, "nodes must be >= 1");
  State state(options);
  try {
    auto io = kj::setupAsyncIo();
    auto& ws = io.waitScope;
    auto& timer = io.provider->getTimer();
    kj::Own<kj::ConnectionReceiver> listener =
        options.listen_fd >= 0
            ? io.lowLevelProvider->wrapListenSocketFd(options.listen_fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP)
            : io.provider->getNetwork().parseAddress(options.listen).wait(ws)->listen();
    auto port = static_cast<std::uint16_t>(listener->getPort());
    if (port != 0) state.event(fmt::format("coordinator listening on port {}", port));
    if (options.on_listening) options.on_listening(port);
    {
      ControlServer server(kj::heap<CoordinatorImpl>(state), options.secret, timer,
                           options.handshake_limit.count() * kj::MILLISECONDS);
      auto accepting = server.accept_loop(*listener).eagerlyEvaluate(
          [](kj::Exception&& e) { log::get("coord")->error("coordinator stopped accepting: {}", e.getDescription().cStr()); });
      Driver driver(state, ws, timer);
      bool ok = driver.wait_until([&] { return state.joined == state.members.size(); },
                                  options.timing.join_timeout, "every node to join");
      if (ok) driver.configure_all();
      for (std::uint32_t p = 0; p < options.config.phases && !state.failure && !state.guest_exit; ++p)
        driver.run_phase(p);
      driver.stop_all(state.failure.value_or(finished_message(state)), state.failure.has_value());
      // Capabilities must go before the connections that carry them.
      for (auto& m : state.members) m.client.reset();
      ws.poll();
    }
  } catch (const kj::Exception& e) {
    return make_error(Errc::kSystem, fmt::format("coordinator on {}: {}", options.listen,
                                                 e.getDescription().cStr()));
  }
  Outcome out;
  out.exit_code = state.failure ? state.failure_code : state.guest_exit.value_or(0);
  out.message = state.failure.value_or(finished_message(state));
  out.guest_exit = !state.failure && state.guest_exit;
  for (auto& m : state.members) out.nodes.push_back({m.info, m.last});
  return out;
}

}  // namespace ssi::coord
