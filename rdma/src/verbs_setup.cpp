#include "verbs_setup.hpp"

#include <string>
#include <vector>

#include "rdma/codec.hpp"

namespace ssi::rdma {

Frame setup_frame(NodeId from, NodeId to, SetupStage stage, const std::optional<VerbsConnInfo>& info,
                  Payload auth) {
  Frame f;
  f.header.type = kFrameHello;
  f.header.src = from.value();
  f.header.dst = to.value();
  f.header.arg0 = stage;
  std::vector<std::byte> bytes(auth.bytes().begin(), auth.bytes().end());
  if (info) {
    std::string text = info->encode();
    auto b = std::as_bytes(std::span(text.data(), text.size()));
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
  if (!bytes.empty()) f.payload = Payload::copy_of(bytes);
  f.header.payload_len = static_cast<std::uint32_t>(f.payload.size());
  return f;
}

Result<VerbsConnInfo> setup_info(const Frame& f, std::size_t skip) {
  auto bytes = f.payload.bytes();
  if (bytes.size() < skip) return make_error(Errc::kProtocol, "setup message without its challenge");
  bytes = bytes.subspan(skip);
  return VerbsConnInfo::decode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace ssi::rdma
