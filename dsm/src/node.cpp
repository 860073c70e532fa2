// Node agent: lifecycle, frame dispatch, sending, home side.
#include <sys/epoll.h>

#include <cstdlib>

#include <fmt/format.h>

#include "dsm/messages.hpp"
#include "node_internal.hpp"

namespace ssi::dsm {

std::optional<std::chrono::microseconds> HoldPolicy::env_override() {
  const char* us = std::getenv("SSI_DSM_HOLD_US");
  if (!us || !*us) return std::nullopt;
  return std::chrono::microseconds(std::strtoll(us, nullptr, 10));
}

void HotPagePolicy::apply_env() {
  if (const char* m = std::getenv("SSI_DSM_MIGRATORY"); m && *m) migratory = std::strtol(m, nullptr, 10) != 0;
  if (const char* us = std::getenv("SSI_DSM_HOT_HOLD_US"); us && *us)
    hold = std::chrono::microseconds(std::strtoll(us, nullptr, 10));
}

Result<std::unique_ptr<Node>> Node::create(NodeConfig config, rdma::Reactor& reactor,
                                           rdma::Transport& transport) {
  if (config.self.value() >= config.nodes || config.nodes > Directory::kMaxNodes)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("node {} of {} (at most {} nodes)", config.self, config.nodes,
                                  Directory::kMaxNodes));
  if (auto window = HoldPolicy::env_override()) config.hold.window = *window;
  config.hot.apply_env();
  SSI_ASSIGN_OR_RETURN(Region region, Region::create(config.bytes));
  auto map = config.homes.empty()
                 ? HomeMap::equal_chunks(region.pages(), config.nodes)
                 : HomeMap::from_ranges(region.pages(), config.nodes, config.homes);
  if (!map.ok()) return std::move(map).error();
  return std::unique_ptr<Node>(
      new Node(std::move(config), std::move(*map), std::move(region), reactor, transport));
}

Node::Node(NodeConfig config, HomeMap map, Region region, rdma::Reactor& reactor,
           rdma::Transport& transport)
    : config_(std::move(config)),
      map_(std::move(map)),
      region_(std::move(region)),
      reactor_(reactor),
      transport_(transport),
      table_(region_.pages()),
      directory_(config_.self, map_),
      granted_at_(config_.hold.window.count() > 0 ? region_.pages() : 0) {
  directory_.set_migratory(config_.hot.migratory);
}

Node::~Node() = default;

Result<void> Node::start() {
  if (started_) return make_error(Errc::kInvalidArgument, "node already started");
  SSI_TRY(reactor_.watch(region_.uffd(), EPOLLIN, [this](std::uint32_t) { on_uffd_ready(); }));
  SSI_TRY(transport_.route(kDsmFrames, [this](rdma::Frame&& f) { deliver(std::move(f)); }));
  started_ = true;
  return ok();
}

void Node::stop() {
  if (!started_ || stopping_) return;
  stopping_ = true;
  reactor_.unwatch(region_.uffd());
  transport_.unroute(kDsmFrames);
  for (auto& [page, inf] : inflight_) inf->done.set_value();
  inflight_.clear();
}

void Node::deliver(rdma::Frame&& f) {
  if (stopping_) return;
  on_frame(std::move(f));
}

void Node::on_frame(rdma::Frame&& f) {
  const auto& h = f.header;
  if (!kDsmFrames.contains(h.type))
    return bad_message(h, make_error(Errc::kProtocol, "not a DSM frame"));
  if (h.src >= config_.nodes)
    return bad_message(h, make_error(Errc::kNotFound, fmt::format("unknown node {}", h.src)));
  if (msg_page(h).value() >= region_.pages())
    return bad_message(h, make_error(Errc::kOutOfRange,
                                     fmt::format("page beyond {} pages", region_.pages())));
  if (!f.payload.empty() && f.payload.size() != kPageSize)
    return bad_message(h, make_error(Errc::kProtocol,
                                     fmt::format("payload of {} bytes", f.payload.size())));
  if (h.src != config_.self.value()) stats_.bytes_received += f.payload.size();
  if (h.type >= kHandEntry && h.type <= kHandEntries) return on_handover_frame(f);
  if (retired_) return bad_message(h, make_error(Errc::kShutdown, "this node retired"));
  const bool from_home = map_.home_of(msg_page(h)) == NodeId{h.src};
  switch (h.type) {
    case kGrant:
    case kInv:
    case kFetch:
      // Only a grant may come from another node: the old owner forwards it.
      if (!from_home && !(h.type == kGrant && (msg_flags(h) & kGrantForwarded)))
        return bad_message(h, make_error(Errc::kProtocol, "sender is not the page's home"));
      if (h.type != kGrant && msg_arg(h) >= config_.nodes)
        return bad_message(h, make_error(Errc::kNotFound,
                                         fmt::format("on behalf of unknown node {}", msg_arg(h))));
      if (h.type == kGrant) return on_grant(f);
      if (h.type == kInv) return on_inv(f);
      return on_fetch(f);
    case kInvAck:
      return on_inv_ack(f);
    default:
      return on_home_frame(f);
  }
}

void Node::on_home_frame(const rdma::Frame& f) {
  Outbox out;
  auto r = directory_.on_message(f.header, f.payload.bytes(), out);
  if (!r.ok()) return bad_message(f.header, r.error());
  stats_.page_migrations.store(directory_.migrations(), std::memory_order_relaxed);
  stats_.migratory_grants.store(directory_.migratory_grants(), std::memory_order_relaxed);
  for (const auto& m : out) {
    if (m.type == kInv) ++stats_.invalidations_sent;
    if (m.type == kFetch) ++stats_.fetches_sent;
    send_out(m);
  }
}

void Node::send_out(const OutMsg& m) {
  rdma::Frame f = make_msg(m.type, m.page, m.version, m.flags, m.arg);
  if (!m.data.empty()) f.payload = rdma::Payload::borrow(m.data);
  if (m.to == config_.self) {
    // Local delivery: own the bytes (the borrowed page may change once we
    // yield) and run the handler in a fiber of its own, like a received frame.
    f.header.src = f.header.dst = config_.self.value();
    f.header.payload_len = static_cast<std::uint32_t>(f.payload.size());
    auto frame = std::make_shared<rdma::Frame>(std::move(f));
    frame->payload = std::move(frame->payload).to_owned();
    reactor_.spawn([this, frame] { deliver(std::move(*frame)); });
    return;
  }
  stats_.bytes_sent += f.payload.size();
  auto r = transport_.send(m.to, std::move(f));
  if (!r.ok())
    local_error(make_error(r.error().code, fmt::format("send {} page {} to node {}: {}",
                                                       msg_name(m.type), m.page, m.to,
                                                       r.error().to_string())));
}

void Node::bad_message(const rdma::FrameHeader& h, const Error& why) {
  ++stats_.bad_messages;
  dsm_log()->warn("node {}: rejected {} ({:#x}) from {} page {} version {}: {}", config_.self,
                  msg_name(h.type), h.type, h.src, msg_page(h), msg_version(h), why.to_string());
}

void Node::local_error(const Error& why) {
  ++stats_.local_errors;
  dsm_log()->error("node {}: {}", config_.self, why.to_string());
}

}  // namespace ssi::dsm
