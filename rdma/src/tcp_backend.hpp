// The tcp backend's entry point for make_transport() (see factory.cpp).
#pragma once

#include <memory>

#include "rdma/factory.hpp"

namespace ssi::rdma {

Result<std::unique_ptr<Transport>> make_tcp_transport(const TransportConfig& config, Reactor& reactor);

}  // namespace ssi::rdma
