#include "node_barrier.hpp"

#include <memory>

#include <fmt/format.h>

namespace ssi::coord {

void pause_nodes(kj::TaskSet& tasks, const std::vector<Node::Client*>& nodes,
                 std::function<void(std::optional<Error>)> done) {
  struct Barrier {
    std::size_t pending = 0;
    std::optional<Error> first;
    std::function<void(std::optional<Error>)> done;
    void answered(std::optional<Error> e) {
      if (e && !first) first = std::move(e);
      if (--pending == 0) done(std::move(first));
    }
  };
  auto b = std::make_shared<Barrier>();
  b->done = std::move(done);
  for (Node::Client* c : nodes) b->pending += c ? 1 : 0;
  if (b->pending == 0) return b->done(std::nullopt);
  for (std::size_t id = 0; id < nodes.size(); ++id) {
    if (!nodes[id]) continue;
    auto req = nodes[id]->checkpointPauseRequest();
    req.setTimeoutMs(kPauseTimeoutMs);
    tasks.add(req.send().then(
        [b, id](capnp::Response<Node::CheckpointPauseResults>&& r) {
          if (r.getError().size() == 0) return b->answered(std::nullopt);
          b->answered(make_error(Errc::kTimeout, fmt::format("node {}: {}", id, r.getError().cStr())));
        },
        [b, id](kj::Exception&& e) {
          b->answered(make_error(Errc::kDisconnected, fmt::format("node {}: {}", id, e.getDescription().cStr())));
        }));
  }
}

void resume_nodes(kj::TaskSet& tasks, const std::vector<Node::Client*>& nodes, bool stop) {
  for (Node::Client* c : nodes) {
    if (!c) continue;
    auto req = c->checkpointResumeRequest();
    req.setStop(stop);
    tasks.add(req.send().ignoreResult().catch_([](kj::Exception&&) {}));
  }
}

}  // namespace ssi::coord
