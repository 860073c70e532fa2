// The verbs side channel's setup messages: kFrameHello frames on the TCP
// side channel, the stage in header.arg0. Offer: dialer nonce + its
// VerbsConnInfo text; answer: acceptor nonce + proof + info; ready: dialer
// proof; confirmed: the acceptor checked it. The dialer sends no frame
// before "confirmed", so a frame on a QP whose peer is not established is
// an unauthenticated one and drops the connection (hello_auth.hpp).
#pragma once

#include <cstdint>
#include <optional>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "rdma/frame.hpp"
#include "rdma/verbs_conn_info.hpp"

namespace ssi::rdma {

enum SetupStage : std::uint64_t { kOffer = 1, kAnswer = 2, kReady = 3, kConfirmed = 4 };

// `auth`: the challenge bytes leading the payload (nonce [+ proof], or a proof).
Frame setup_frame(NodeId from, NodeId to, SetupStage stage, const std::optional<VerbsConnInfo>& info,
                  Payload auth = {});
// The VerbsConnInfo after the first `skip` (challenge) bytes of the payload.
Result<VerbsConnInfo> setup_info(const Frame& f, std::size_t skip);

}  // namespace ssi::rdma
