#include "rdma/transport_base.hpp"

#include <future>
#include <optional>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/mutex.hpp>

#include "base/log.hpp"
#include "rdma/codec.hpp"

namespace ssi::rdma {

// Lives on the stack of the fiber blocked in rpc().
struct TransportBase::PendingRpc {
  NodeId peer;
  std::optional<Result<Frame>> result;
  boost::fibers::mutex mutex;
  boost::fibers::condition_variable cv;
};

TransportBase::TransportBase(NodeId self, Reactor& reactor) : self_(self), reactor_(reactor) {}

TransportBase::~TransportBase() = default;

Result<void> TransportBase::send(NodeId peer, Frame frame) {
  if (shut_down_) return make_error(Errc::kShutdown, "transport is shut down");
  if (frame.payload.size() > kMaxPayload)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("payload of {} bytes exceeds {}", frame.payload.size(), kMaxPayload));
  FrameHeader& h = frame.header;
  h.magic = kFrameMagic;
  h.version = kProtocolVersion;
  h.src = self_.value();
  h.dst = peer.value();
  h.payload_len = static_cast<std::uint32_t>(frame.payload.size());
  SSI_TRY(validate_header(h));
  return send_frame(peer, std::move(frame));
}

Result<Frame> TransportBase::rpc(NodeId peer, Frame request, std::chrono::milliseconds timeout) {
  if (shut_down_) return make_error(Errc::kShutdown, "transport is shut down");
  const std::uint64_t id = next_request_id_++;
  const FrameType type = request.header.type;
  request.header.request_id = id;
  request.header.flags &= static_cast<std::uint16_t>(~(kFlagReply | kFlagError));
  PendingRpc pending{peer, std::nullopt, {}, {}};
  pending_[id] = &pending;
  if (auto r = send(peer, std::move(request)); !r.ok()) {
    pending_.erase(id);
    return std::move(r).error();
  }
  std::unique_lock lock(pending.mutex);
  if (!pending.cv.wait_for(lock, timeout, [&] { return pending.result.has_value(); })) {
    pending_.erase(id);
    return make_error(Errc::kTimeout, fmt::format("rpc type {:#06x} to node {} got no reply in {} ms",
                                                  type, peer, timeout.count()));
  }
  Result<Frame> result = std::move(*pending.result);
  if (result.ok() && (result->header.flags & kFlagError)) {
    auto bytes = result->payload.bytes();
    std::string message(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return make_error(static_cast<Errc>(result->header.arg0),
                      fmt::format("node {} answered rpc type {:#06x}: {}", peer, type, message));
  }
  return result;
}

Result<void> TransportBase::reply(const FrameHeader& request, Frame reply) {
  reply.header.request_id = request.request_id;
  reply.header.flags |= kFlagReply;
  if (reply.header.type == 0) reply.header.type = request.type;
  return send(NodeId{request.src}, std::move(reply));
}

Result<void> TransportBase::reply_error(const FrameHeader& request, Errc code,
                                        std::string_view message) {
  Frame f = Frame::make(request.type, static_cast<std::uint64_t>(code));
  f.header.flags = kFlagError;
  message = message.substr(0, kMaxPayload);
  f.payload = Payload::copy_of(std::as_bytes(std::span(message.data(), message.size())));
  return reply(request, std::move(f));
}

void TransportBase::deliver(Frame&& frame) {
  if (frame.is_reply()) {
    auto it = pending_.find(frame.header.request_id);
    if (it == pending_.end() || it->second->peer != frame.src()) {
      // Late (timed out) or stray reply: nobody waits for it any more.
      log::get("rdma")->debug("dropping reply {} from node {}: no such rpc",
                              frame.header.request_id, frame.header.src);
      return;
    }
    complete(frame.header.request_id, std::move(frame));
    return;
  }
  if (!dispatcher_.find(frame.header.type)) {
    log::get("rdma")->debug("dropping frame type {:#06x} from node {}: no handler",
                            frame.header.type, frame.header.src);
    return;
  }
  // Task is a std::function (copyable), so the move-only frame rides in a shared_ptr.
  auto f = std::make_shared<Frame>(std::move(frame));
  ++handlers_running_;
  reactor_.spawn([this, f] {
    // Looked up again: the route may have changed meanwhile.
    if (auto handler = dispatcher_.find(f->header.type)) (*handler)(std::move(*f));
    --handlers_running_;
  });
}

void TransportBase::complete(std::uint64_t request_id, Result<Frame> result) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  PendingRpc* p = it->second;
  pending_.erase(it);
  std::unique_lock lock(p->mutex);
  p->result.emplace(std::move(result));
  p->cv.notify_one();
}

void TransportBase::peer_down(NodeId peer, const Error& why) {
  std::vector<std::uint64_t> ids;
  for (auto& [id, p] : pending_)
    if (p->peer == peer) ids.push_back(id);
  for (auto id : ids)
    complete(id, make_error(Errc::kDisconnected, fmt::format("node {} is down: {}", peer,
                                                             why.to_string())));
  log::get("rdma")->info("node {} down: {}", peer, why.to_string());
  if (peer_down_handler_) {
    reactor_.spawn([this, peer, why] {
      if (peer_down_handler_) peer_down_handler_(peer, why);
    });
  }
}

void TransportBase::shutdown() {
  if (!reactor_.running() || reactor_.on_reactor_thread()) {
    shutdown_here();
    return;
  }
  // Another thread: connections belong to the reactor thread, so ask it.
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  reactor_.post([this, done] {
    shutdown_here();
    done->set_value();
  });
  if (fut.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    log::get("rdma")->error("shutdown of node {} did not run on its reactor within 5 s", self_);
}

void TransportBase::shutdown_here() {
  if (shut_down_) return;
  shut_down_ = true;
  std::vector<std::uint64_t> ids;
  for (auto& [id, p] : pending_) ids.push_back(id);
  for (auto id : ids)
    complete(id, make_error(Errc::kShutdown, fmt::format("node {} shut down", self_)));
  close_all();
}

}  // namespace ssi::rdma
