#include "ssi/devices/fw_cfg.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ssi::machine {
namespace {

// Drives the device through a port bus exactly as a guest does: a 16-bit
// out to 0x510, then byte-wise ins from 0x511.
class FwCfgTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(bus_.add("fw_cfg", kFwCfgPort, kFwCfgPorts, &dev_).ok()); }
  std::vector<std::uint8_t> read_item(std::uint16_t key, std::size_t n) {
    std::uint8_t sel[2] = {static_cast<std::uint8_t>(key), static_cast<std::uint8_t>(key >> 8)};
    EXPECT_TRUE(bus_.write(kFwCfgPort, sel));
    std::vector<std::uint8_t> out(n);
    for (auto& b : out) EXPECT_TRUE(bus_.read(kFwCfgPort + 1, std::span(&b, 1)));
    return out;
  }
  template <typename T>
  T read_le(std::uint16_t key) {
    auto b = read_item(key, sizeof(T));
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(T{b[i]} << (8 * i));
    return v;
  }

  FwCfg dev_{{.ram_bytes = 256 * 1024 * 1024,
              .cpus = 4,
              .cpu_node = {0, 0, 1, 1},
              .node_bytes = {128u << 20, 128u << 20}}};
  IoBus bus_{"pio"};
};

TEST_F(FwCfgTest, SignatureIsQemu) {
  auto sig = read_item(fw_cfg::kSignature, 4);
  EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
  EXPECT_EQ(read_le<std::uint32_t>(fw_cfg::kId), 1u) << "traditional interface, no DMA";
}

TEST_F(FwCfgTest, ReportsCpuCountAndRamSize) {
  EXPECT_EQ(read_le<std::uint16_t>(fw_cfg::kNbCpus), 4);
  EXPECT_EQ(read_le<std::uint16_t>(fw_cfg::kMaxCpus), 4);
  EXPECT_EQ(read_le<std::uint64_t>(fw_cfg::kRamSize), 256ull << 20);
}

TEST_F(FwCfgTest, NumaItemListsNodesCpuPlacementAndSizes) {
  auto b = read_item(fw_cfg::kNuma, 8 * 7);
  auto u64 = [&](int i) {
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v |= std::uint64_t{b[8 * i + k]} << (8 * k);
    return v;
  };
  EXPECT_EQ(u64(0), 2u);
  EXPECT_EQ(u64(1), 0u);
  EXPECT_EQ(u64(3), 1u);
  EXPECT_EQ(u64(4), 1u);
  EXPECT_EQ(u64(5), 128u << 20);
}

TEST_F(FwCfgTest, UnknownItemsAndReadsPastTheEndGiveZeros) {
  EXPECT_EQ(read_item(0x4242, 3), (std::vector<std::uint8_t>{0, 0, 0}));
  auto sig = read_item(fw_cfg::kSignature, 6);
  EXPECT_EQ(sig[4], 0);
  EXPECT_EQ(sig[5], 0);
  EXPECT_EQ(read_item(fw_cfg::kFileDir, 4), (std::vector<std::uint8_t>{0, 0, 0, 0}));
}

TEST_F(FwCfgTest, SelectingAgainRestartsTheItem) {
  read_item(fw_cfg::kSignature, 2);
  auto again = read_item(fw_cfg::kSignature, 4);
  EXPECT_EQ(std::string(again.begin(), again.end()), "QEMU");
}

}  // namespace
}  // namespace ssi::machine
