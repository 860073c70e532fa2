// Messages produced by the pure protocol logic (Directory, PageTable) for the
// node agent to send. Payloads are borrowed spans: valid until the next call
// into the object that produced them for the same page.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/ids.hpp"
#include "rdma/frame.hpp"

namespace ssi::dsm {

struct OutMsg {
  NodeId to;
  rdma::FrameType type = 0;
  PageNo page;
  std::uint64_t version = 0;
  std::uint64_t flags = 0;
  std::span<const std::byte> data;  // empty = no payload
  std::uint64_t arg = 0;  // msg_arg: the requester (Inv, Fetch) or acks to collect (Grant)
};

using Outbox = std::vector<OutMsg>;

}  // namespace ssi::dsm
