#include "verbs_backend.hpp"

#include "rdma/verbs_device.hpp"

namespace ssi::rdma {

Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportConfig& config,
                                                        Reactor& reactor) {
  (void)config;
  (void)reactor;
  SSI_ASSIGN_OR_RETURN(auto device, VerbsDevice::open({}));
  return make_error(Errc::kUnsupported,
                    "verbs transport: device " +
                        std::string(ibv_get_device_name(device->context()->device)) +
                        " opened, but the frame data path is not implemented yet");
}

}  // namespace ssi::rdma
