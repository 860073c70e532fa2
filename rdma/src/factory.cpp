#include "rdma/factory.hpp"

#include "rdma/loopback.hpp"

// Every backend is always built (verbs reports kUnsupported without a
// device); each private header declares
//   Result<std::unique_ptr<Transport>> make_<kind>_transport(const TransportConfig&, Reactor&);
#include "shm_backend.hpp"
#include "tcp_backend.hpp"
#include "verbs_backend.hpp"

namespace ssi::rdma {

Result<std::unique_ptr<Transport>> make_transport(const TransportConfig& config, Reactor& reactor) {
  if (config.kind == "loopback") {
    if (!config.loopback)
      return make_error(Errc::kInvalidArgument, "loopback transport needs a LoopbackNetwork");
    SSI_ASSIGN_OR_RETURN(auto t, config.loopback->create(config.self, reactor));
    return std::unique_ptr<Transport>(std::move(t));
  }
  if (config.kind == "tcp") return make_tcp_transport(config, reactor);
  if (config.kind == "shm") return make_shm_transport(config, reactor);
  if (config.kind == "verbs") return make_verbs_transport(config, reactor);
  return make_error(Errc::kUnsupported,
                    fmt::format("unknown transport kind '{}' (known: tcp, shm, verbs, loopback)", config.kind));
}

}  // namespace ssi::rdma
