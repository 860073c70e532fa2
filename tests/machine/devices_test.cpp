#include <gtest/gtest.h>

#include <array>
#include <string>
#include <unistd.h>

#include "ssi/board.hpp"
#include "ssi/devices/debug_exit.hpp"
#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/serial.hpp"
#include "ssi/machine_io.hpp"

namespace ssi::machine {
namespace {

// Records accesses: what a bus handed to a device.
class RecordingDevice : public IoDevice {
 public:
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    last_offset = offset;
    set_io_value(data, 0x1122334455667788ull);
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    last_offset = offset;
    last_value = io_value(data);
    last_size = data.size();
  }
  std::uint64_t last_offset = ~0ull, last_value = 0;
  std::size_t last_size = 0;
};

std::uint8_t in8(const IoBus& bus, std::uint64_t port) {
  std::array<std::uint8_t, 1> b{};
  bus.read(port, b);
  return b[0];
}
void out8(const IoBus& bus, std::uint64_t port, std::uint8_t v) {
  std::array<std::uint8_t, 1> b{v};
  bus.write(port, b);
}

TEST(IoBus, DispatchesByRangeWithDeviceRelativeOffsets) {
  IoBus bus("pio");
  RecordingDevice a, b;
  ASSERT_TRUE(bus.add("a", 0x100, 8, &a).ok());
  ASSERT_TRUE(bus.add("b", 0x10, 4, &b).ok());
  std::array<std::uint8_t, 2> w{0x34, 0x12};
  EXPECT_TRUE(bus.write(0x106, w));
  EXPECT_EQ(a.last_offset, 6u);
  EXPECT_EQ(a.last_value, 0x1234u);
  EXPECT_EQ(a.last_size, 2u);
  std::array<std::uint8_t, 4> r{};
  EXPECT_TRUE(bus.read(0x10, r));
  EXPECT_EQ(io_value(r), 0x55667788u);
  EXPECT_EQ(b.last_offset, 0u);
}

TEST(IoBus, UnclaimedReadsAreAllOnesAndStraddlingAccessesMiss) {
  IoBus bus("pio");
  RecordingDevice a;
  ASSERT_TRUE(bus.add("a", 0x100, 8, &a).ok());
  std::array<std::uint8_t, 4> r{};
  EXPECT_FALSE(bus.read(0x200, r));
  EXPECT_EQ(io_value(r), 0xFFFFFFFFu);
  EXPECT_FALSE(bus.read(0x106, r));  // 4 bytes at 0x106 leave the 8-port window
  EXPECT_FALSE(bus.read(0xFF, r));
}

TEST(IoBus, RejectsOverlappingRanges) {
  IoBus bus("pio");
  RecordingDevice a, b;
  ASSERT_TRUE(bus.add("a", 0x100, 8, &a).ok());
  auto r = bus.add("b", 0x107, 2, &b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("overlaps a"), std::string::npos);
  EXPECT_TRUE(bus.add("b", 0x108, 2, &b).ok());
  EXPECT_FALSE(bus.add("c", 0x10, 0, &b).ok());
}

class SerialTest : public ::testing::Test {
 protected:
  SerialTest() : uart_([this](char c) { out_.push_back(c); }) {
    EXPECT_TRUE(bus_.add("com1", kCom1Port, kUartPorts, &uart_).ok());
  }
  std::string out_;
  Serial16550 uart_;
  IoBus bus_{"pio"};
};

TEST_F(SerialTest, PollingDriverSeesTransmitterReadyAndBytesReachTheSink) {
  for (char c : std::string("hi\n")) {
    // What a polling driver does: wait for THRE, then write THR.
    ASSERT_TRUE(in8(bus_, kCom1Port + 5) & Serial16550::kLsrThre);
    out8(bus_, kCom1Port, static_cast<std::uint8_t>(c));
  }
  EXPECT_EQ(out_, "hi\n");
  EXPECT_EQ(in8(bus_, kCom1Port + 5) & Serial16550::kLsrDr, 0);  // nothing to receive
}

TEST_F(SerialTest, DivisorLatchDoesNotTransmit) {
  out8(bus_, kCom1Port + 3, Serial16550::kLcrDlab);
  out8(bus_, kCom1Port + 0, 0x01);  // DLL = 1 (115200 baud)
  out8(bus_, kCom1Port + 1, 0x00);
  EXPECT_EQ(in8(bus_, kCom1Port + 0), 0x01);
  out8(bus_, kCom1Port + 3, 0x03);  // 8N1, DLAB off
  EXPECT_EQ(in8(bus_, kCom1Port + 3), 0x03);
  out8(bus_, kCom1Port, 'x');
  EXPECT_EQ(out_, "x");
}

TEST_F(SerialTest, ScratchAndLoopbackBehaveLikeA16550) {
  out8(bus_, kCom1Port + 7, 0x5A);
  EXPECT_EQ(in8(bus_, kCom1Port + 7), 0x5A);
  out8(bus_, kCom1Port + 4, Serial16550::kMcrLoop | 0x0A);  // loop + RTS + OUT2
  EXPECT_EQ(in8(bus_, kCom1Port + 6) & 0xF0, 0x90);         // CTS + DCD
  out8(bus_, kCom1Port, 'z');                               // loopback: not transmitted
  EXPECT_EQ(out_, "");
  out8(bus_, kCom1Port + 2, 0x01);  // FCR: FIFO on
  EXPECT_EQ(in8(bus_, kCom1Port + 2), 0xC1);
}

TEST(DebugExit, QemuConventionAndDirectCodes) {
  EXPECT_EQ(DebugExit::exit_code(DebugExit::Convention::kQemu, 0), 1);
  EXPECT_EQ(DebugExit::exit_code(DebugExit::Convention::kQemu, 0x10), 0x21);
  EXPECT_EQ(DebugExit::exit_code(DebugExit::Convention::kDirect, 0), 0);
  EXPECT_EQ(DebugExit::exit_code(DebugExit::Convention::kDirect, 0x1ff), 0xff);
}

TEST(DebugExit, FirstGuestWriteSetsTheMachineExitCode) {
  vcpu::ExitRequest exit;
  DebugExit qemu(DebugExit::Convention::kQemu, exit);
  DebugExit direct(DebugExit::Convention::kDirect, exit);
  IoBus bus("pio");
  ASSERT_TRUE(bus.add("debug-exit", kQemuDebugExitPort, kQemuDebugExitPorts, &qemu).ok());
  ASSERT_TRUE(bus.add("ssi-exit", kSsiExitPort, kSsiExitPorts, &direct).ok());
  int stops = 0;
  exit.add_listener([&] { ++stops; });
  EXPECT_FALSE(exit.exit_code().has_value());
  std::array<std::uint8_t, 4> v{3, 0, 0, 0};
  EXPECT_TRUE(bus.write(kQemuDebugExitPort, v));
  EXPECT_EQ(exit.exit_code(), 7);
  out8(bus, kSsiExitPort, 0);  // a later write (another vCPU) does not change it
  EXPECT_EQ(exit.exit_code(), 7);
  EXPECT_EQ(stops, 1);
}

TEST(MachineIo, RoutesPortAndMmioAccessesAndCountsUnclaimed) {
  IoBus pio("pio"), mmio("mmio");
  RecordingDevice port_dev, mmio_dev;
  ASSERT_TRUE(pio.add("p", 0x3f8, 8, &port_dev).ok());
  ASSERT_TRUE(mmio.add("m", 0xD0000000, 0x1000, &mmio_dev).ok());
  MachineIo io(pio, mmio);
  std::array<std::uint8_t, 1> b{'A'};
  ASSERT_TRUE(io.pio(VcpuId{0}, 0x3f8, true, b).ok());
  EXPECT_EQ(port_dev.last_value, 'A');
  std::array<std::uint8_t, 4> w{1, 0, 0, 0};
  ASSERT_TRUE(io.mmio(VcpuId{1}, Gpa{0xD0000010}, true, w).ok());
  EXPECT_EQ(mmio_dev.last_offset, 0x10u);
  EXPECT_EQ(io.unclaimed(), 0u);
  ASSERT_TRUE(io.pio(VcpuId{0}, 0x80, false, b).ok());
  EXPECT_EQ(b[0], 0xFF);
  EXPECT_EQ(io.unclaimed(), 1u);
}

TEST(BoardWindows, AreWhatTheBoardClaimsOnItsBuses) {
  // The static layout other nodes use to answer unclaimed accesses locally
  // must be exactly what node 0's buses dispatch.
  vcpu::ExitRequest exit;
  Board board(-1, exit);
  DebugExit spare(DebugExit::Convention::kDirect, exit);  // stands in for fw_cfg
  ASSERT_TRUE(board.attach(spare).ok());
  for (const DeviceWindow& w : board_windows()) {
    SCOPED_TRACE(std::string(w.name));
    EXPECT_TRUE(board_claims(w.mmio, w.base, 1));
    EXPECT_TRUE(board_claims(w.mmio, w.base + w.size - 1, 1));
    EXPECT_FALSE(board_claims(w.mmio, w.base + w.size - 1, 2)) << "straddles the end";
    IoBus& bus = w.mmio ? board.mmio() : board.pio();
    EXPECT_FALSE(bus.add("probe", w.base, 1, &spare).ok()) << "the bus has a device there";
  }
  EXPECT_FALSE(board_claims(false, 0x80, 1)) << "POST port: nobody";
  EXPECT_FALSE(board_claims(true, 0xFED00000, 4)) << "HPET: nobody";
  EXPECT_FALSE(board_claims(false, 0xFEC00000, 1)) << "ports and MMIO are separate spaces";
}

TEST(LineWriter, KeepsLinesTogetherAndFlushesOnDestruction) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    LineWriter w(fds[1]);
    for (char c : std::string("ab\ncd")) w.put(c);
    char buf[16] = {};
    ASSERT_EQ(::read(fds[0], buf, sizeof buf), 3);  // only the complete line so far
    EXPECT_EQ(std::string(buf, 3), "ab\n");
  }
  char buf[16] = {};
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), 2);
  EXPECT_EQ(std::string(buf, 2), "cd");
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace ssi::machine
