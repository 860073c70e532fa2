// Hook for make_transport() (factory.cpp picks this header up when present).
#pragma once

#include "rdma/factory.hpp"

namespace ssi::rdma {

// A VerbsTransport over the first RDMA device (verbs_transport.hpp). With
// none: Errc::kUnsupported "verbs transport: no RDMA device: ...".
Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportConfig& config,
                                                        Reactor& reactor);

}  // namespace ssi::rdma
