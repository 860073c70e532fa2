// Hook for make_transport() (factory.cpp picks this header up when present).
#pragma once

#include "rdma/factory.hpp"

namespace ssi::rdma {

// config.listen: "shm:NAME" or empty (a unique name).
Result<std::unique_ptr<Transport>> make_shm_transport(const TransportConfig& config,
                                                      Reactor& reactor);

}  // namespace ssi::rdma
