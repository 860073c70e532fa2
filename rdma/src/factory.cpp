#include "rdma/factory.hpp"

#include "rdma/loopback.hpp"

// Optional backends: a backend's private header declares
//   Result<std::unique_ptr<Transport>> make_<kind>_transport(const TransportConfig&, Reactor&);
// and is picked up here when its file exists.
#if __has_include("tcp_backend.hpp")
#include "tcp_backend.hpp"
#define SSI_RDMA_HAVE_TCP 1
#endif
#if __has_include("shm_backend.hpp")
#include "shm_backend.hpp"
#define SSI_RDMA_HAVE_SHM 1
#endif
#if __has_include("verbs_backend.hpp")
#include "verbs_backend.hpp"
#define SSI_RDMA_HAVE_VERBS 1
#endif

namespace ssi::rdma {

Result<std::unique_ptr<Transport>> make_transport(const TransportConfig& config, Reactor& reactor) {
  if (config.kind == "loopback") {
    if (!config.loopback)
      return make_error(Errc::kInvalidArgument, "loopback transport needs a LoopbackNetwork");
    SSI_ASSIGN_OR_RETURN(auto t, config.loopback->create(config.self, reactor));
    return std::unique_ptr<Transport>(std::move(t));
  }
#ifdef SSI_RDMA_HAVE_TCP
  if (config.kind == "tcp") return make_tcp_transport(config, reactor);
#endif
#ifdef SSI_RDMA_HAVE_SHM
  if (config.kind == "shm") return make_shm_transport(config, reactor);
#endif
#ifdef SSI_RDMA_HAVE_VERBS
  if (config.kind == "verbs") return make_verbs_transport(config, reactor);
#endif
  return make_error(Errc::kUnsupported,
                    fmt::format("transport kind '{}' is not built into this binary", config.kind));
}

}  // namespace ssi::rdma
