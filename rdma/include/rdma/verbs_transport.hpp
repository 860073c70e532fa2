// The verbs backend: one RC queue pair per peer pair over a VerbsFabric
// (libibverbs in production, the soft RC fake in tests).
//
// Connection setup runs over a TCP side channel, as rc_pingpong does: the
// node listens on "verbs:HOST:PORT"; the dialer sends a hello carrying its
// VerbsConnInfo (QP number, LID/GID, MTU, the rkey/address/length of the
// page slots it offers), the acceptor brings its QP to RTS and answers with
// its own, the dialer brings its QP to RTS and confirms; frames flow after
// that. If both nodes dial at once, the dial of the lower NodeId wins. The
// side channel stays open: its end (EOF, reset) is how a peer's death is
// seen even when nothing is being sent; a failed work completion (QP error,
// rkey violation, retry exceeded) drops the connection as well. Both close
// the other and report peer down with the reason.
//
// Data path: verbs_channel.hpp (SEND/RECV with a credit window for control
// frames, RDMA WRITE into the peer's slot + SEND for pages); the completion
// queue is drained by a fiber woken through the completion channel's fd.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "rdma/factory.hpp"
#include "rdma/transport_base.hpp"
#include "rdma/verbs_fabric.hpp"

namespace ssi::rdma {

struct VerbsTransportOptions {
  // R: receive buffers (R + 1 posted) and 4 KiB page slots per peer.
  std::uint32_t buffers = 32;
  // A send waiting this long for a credit fails the connection.
  std::chrono::milliseconds send_stall{30000};
};

class VerbsTransport : public TransportBase {
 public:
  // Takes over `fabric`; listens on config.listen (default
  // "verbs:127.0.0.1:0") for the side channel.
  static Result<std::unique_ptr<VerbsTransport>> create(const TransportConfig& config,
                                                        std::unique_ptr<VerbsFabric> fabric,
                                                        Reactor& reactor,
                                                        VerbsTransportOptions options = {});

  std::string_view kind() const override { return "verbs"; }
  // Pages inside `region` (e.g. guest RAM) are written to peers without a
  // copy; send() then waits for the RDMA WRITE. Deregistered on destruction.
  virtual Result<void> register_memory(std::span<std::byte> region) = 0;
  // The QP number used for `peer`, if connected (tests fail it on purpose).
  virtual std::optional<std::uint32_t> qpn_of(NodeId peer) const = 0;
  // Tests: sends `bytes` (at most header + 256 bytes) to `peer` as one
  // message of the data path, bypassing every check, as a buggy peer would.
  virtual Result<void> send_raw(NodeId peer, std::span<const std::byte> bytes) = 0;

 protected:
  using TransportBase::TransportBase;
};

}  // namespace ssi::rdma
