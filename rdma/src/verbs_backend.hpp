// Hook for make_transport() (factory.cpp picks this header up when present).
#pragma once

#include "rdma/factory.hpp"

namespace ssi::rdma {

// Opens the RDMA device first: with none, Errc::kUnsupported "no RDMA
// device: ...". The frame data path over RC QPs (VerbsQueuePair) is not
// wired into a Transport yet, so with a device it is kUnsupported too.
Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportConfig& config,
                                                        Reactor& reactor);

}  // namespace ssi::rdma
