#include "ssi/devices/fw_cfg.hpp"

namespace ssi::machine {

namespace {

template <typename T>
void append_le(std::vector<std::uint8_t>& v, T x) {
  for (std::size_t i = 0; i < sizeof(T); ++i) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}

constexpr std::uint64_t kSelectorPort = 0, kDataPort = 1;

}  // namespace

FwCfg::FwCfg(const FwCfgConfig& c) {
  items_[fw_cfg::kSignature] = {'Q', 'E', 'M', 'U'};
  append_le<std::uint32_t>(items_[fw_cfg::kId], 1);
  append_le<std::uint64_t>(items_[fw_cfg::kRamSize], c.ram_bytes);
  append_le<std::uint16_t>(items_[fw_cfg::kNbCpus], c.cpus);
  append_le<std::uint16_t>(items_[fw_cfg::kMaxCpus], c.cpus);
  items_[fw_cfg::kFileDir] = {0, 0, 0, 0};  // big-endian count 0: no files
  if (!c.cpu_node.empty()) {
    auto& numa = items_[fw_cfg::kNuma];
    append_le<std::uint64_t>(numa, c.node_bytes.size());
    for (std::uint32_t n : c.cpu_node) append_le<std::uint64_t>(numa, n);
    for (std::uint64_t b : c.node_bytes) append_le<std::uint64_t>(numa, b);
  }
}

std::vector<std::uint8_t> FwCfg::item(std::uint16_t key) const {
  auto it = items_.find(key);
  return it == items_.end() ? std::vector<std::uint8_t>{} : it->second;
}

void FwCfg::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset != kDataPort) {  // the selector port reads back nothing useful
    set_io_value(data, 0);
    return;
  }
  auto it = items_.find(selector_);
  for (auto& byte : data) {  // wider reads stream consecutive bytes, as QEMU does
    byte = (it != items_.end() && pos_ < it->second.size()) ? it->second[pos_] : 0;
    ++pos_;
  }
}

void FwCfg::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset == kSelectorPort) {
    selector_ = static_cast<std::uint16_t>(io_value(data));
    pos_ = 0;
  }
  // Data-port writes were removed from QEMU's interface (2.4+): ignored.
}

}  // namespace ssi::machine

namespace ssi::machine {

void FwCfg::save(StateWriter& w) {
  std::lock_guard lock(mu_);
  w.pod(selector_);
  w.pod(static_cast<std::uint64_t>(pos_));
}

bool FwCfg::restore(StateReader& r) {
  std::lock_guard lock(mu_);
  selector_ = r.pod<std::uint16_t>();
  pos_ = static_cast<std::size_t>(r.pod<std::uint64_t>());
  return !r.failed();
}

}  // namespace ssi::machine
