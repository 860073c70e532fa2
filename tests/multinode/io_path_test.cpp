// The forwarded I/O path: node 0's devices run on their own thread, so a
// console whose write(2) blocks stalls only the accesses queued behind it,
// never the DSM's page service on node 0's reactor; a string instruction
// is one frame; ports and MMIO no device claims never leave the node.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <future>

#include "in_process_machine.hpp"

namespace ssi::multinode::testing {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kMem = 8ull << 20;

void start_cpu1_then_sleep(vcpu::testing::FakeVcpu& v) {
  v.push_mmio_write(0xFEE00310, {0, 0, 0, 1}, false)
      .push_mmio_write(0xFEE00300, {0x00, 0x45, 0, 0}, false)
      .push_mmio_write(0xFEE00300, {0x08, 0x46, 0, 0}, false)
      .push_simple(vcpu::ExitKind::kHlt, false);
}

std::uint64_t counter(ClusterFabric& f, const std::string& name) {
  for (const auto& [n, v] : f.stats())
    if (n == name) return v;
  return 0;
}

// A pipe nobody reads yet, filled: the console's next write(2) blocks.
struct StalledConsole {
  StalledConsole() {
    if (::pipe2(fd, O_CLOEXEC) != 0) return;
    (void)::fcntl(fd[1], F_SETPIPE_SZ, 4096);
    (void)::fcntl(fd[1], F_SETFL, O_NONBLOCK);
    char junk[4096] = {};
    for (int i = 0; i < 64 && ::write(fd[1], junk, sizeof junk) > 0; ++i) {
    }
    (void)::fcntl(fd[1], F_SETFL, 0);
    (void)::fcntl(fd[0], F_SETFL, O_NONBLOCK);
  }
  ~StalledConsole() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  std::string drain() {
    std::string s;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd[0], buf, sizeof buf)) > 0;) s.append(buf, static_cast<std::size_t>(n));
    return s;
  }
  int fd[2] = {-1, -1};
};

TEST(IoPathTest, BlockedConsoleDoesNotStallPageService) {
  StalledConsole console;
  ASSERT_GE(console.fd[1], 0);
  InProcessMachine m(
      2, 2, kMem,
      [](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
        if (v.id().value() == 0) return start_cpu1_then_sleep(v);
        // vCPU 1 on node 1: a line to COM1 (node 0 writes it at the newline
        // and blocks there), then the exit port.
        v.push_io_out(0x3F8, {'x'}, false)
            .push_io_out(0x3F8, {'\n'}, false)
            .push_io_out(0xF8, {0}, false)
            .push_simple(vcpu::ExitKind::kHlt, false);
      },
      1, "loopback", machine::KernelKind::kSsiElf, console.fd[1]);
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  // Bounded: wait until node 0's device thread took the newline (and sits in write(2)).
  for (int i = 0; i < 500 && counter(m.machine(0), "io_served_for_peers") < 2; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_GE(counter(m.machine(0), "io_served_for_peers"), 2u);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(counter(m.machine(0), "io_served_for_peers"), 2u) << "the exit write must be queued";

  // Pages homed on node 0 written from node 1 and back: both reactors serve.
  auto& cl = m.cluster();
  std::uint64_t node1_first = cl.node(0).homes().ranges()[1].first.value();
  auto touch = std::async(std::launch::async, [&] {
    for (std::uint64_t i = 1; i <= 16; ++i) {
      cl.node(1).base()[(node1_first - i) * kPageSize] = static_cast<std::byte>(i);
      cl.node(0).base()[(node1_first + i) * kPageSize] = static_cast<std::byte>(i);
    }
  });
  ASSERT_EQ(touch.wait_for(5s), std::future_status::ready)
      << "page service stalled behind the blocked console";
  EXPECT_EQ(cl.node(0).base()[(node1_first - 16) * kPageSize], std::byte{16});

  // Unblock the console: the queued exit follows.
  auto done = std::async(std::launch::async, [&] { return m.wait(10s); });
  std::string out;
  for (int i = 0; i < 1000 && done.wait_for(10ms) != std::future_status::ready; ++i)
    out += console.drain();
  auto results = done.get();
  out += console.drain();
  for (std::uint32_t n = 0; n < 2; ++n) {
    ASSERT_TRUE(results[n].ok()) << "node " << n << ": " << results[n].error().to_string();
    EXPECT_EQ(*results[n], 0);
  }
  ASSERT_GE(out.size(), 2u);
  EXPECT_EQ(out.substr(out.size() - 2), "x\n");
}

TEST(IoPathTest, StringInstructionIsOneFrameAndUnclaimedAccessesStayLocal) {
  const std::string text = "rep outsb from node 1\n";
  InProcessMachine m(2, 2, kMem, [&text](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    if (v.id().value() == 0) return start_cpu1_then_sleep(v);
    v.push_io_string_out(0x3F8, 1, {text.begin(), text.end()}, false)  // 1 frame
        .push_io_string_in(0x3FD, 1, 3, false)                         // LSR x3: 1 frame
        .push_io_in(0x80, 1, false)                                    // nobody: local
        .push_io_string_in(0x1230, 2, 4, false)                        // nobody: local
        .push_io_out(0x80, {0x42}, false)                              // nobody: local
        .push_mmio_read(0xFED00000, 4, false)                          // nobody: local
        .push_io_out(0xF8, {0}, false)                                 // 1 frame
        .push_simple(vcpu::ExitKind::kHlt, false);
  });
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  auto results = m.wait(5s);
  for (std::uint32_t n = 0; n < 2; ++n)
    ASSERT_TRUE(results[n].ok()) << "node " << n << ": " << results[n].error().to_string();
  EXPECT_NE(m.console().find(text), std::string::npos) << m.console();
  EXPECT_EQ(counter(m.machine(1), "io_forwarded"), 3u) << "string out, string in, exit";
  EXPECT_EQ(counter(m.machine(1), "io_unclaimed_local"), 4u);
  EXPECT_EQ(counter(m.machine(0), "io_served_for_peers"), 3u);
  auto reads = m.vm(1).vcpus()[0]->completed_reads();
  ASSERT_EQ(reads.size(), 4u);
  EXPECT_EQ(reads[0].data.size(), 3u);
  for (auto b : reads[0].data) EXPECT_EQ(b & 0x60, 0x60) << "each LSR read by node 0's 16550";
  EXPECT_EQ(reads[1].data, std::vector<std::uint8_t>{0xFF});
  EXPECT_EQ(reads[2].data, std::vector<std::uint8_t>(8, 0xFF));
  EXPECT_EQ(reads[3].data, std::vector<std::uint8_t>(4, 0xFF));
}

}  // namespace
}  // namespace ssi::multinode::testing
