// Checkpoint format (ssi/checkpoint.hpp) without KVM: a checkpoint written to
// a temp dir reads back exactly; every kind of damage is refused by
// open_checkpoint() and by `ssi run --restore` with one line and exit 2.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ssi/board.hpp"
#include "ssi/checkpoint.hpp"
#include "ssi/devices/fw_cfg.hpp"
#include "ssi/subprocess.hpp"

namespace ssi::machine {
namespace {

constexpr std::uint64_t kRam = 64 * kCheckpointPage;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ssi-ckpt-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ram_.assign(kRam, 0);
    for (std::uint64_t p : {0ull, 3ull, 63ull})  // three non-zero pages
      for (std::uint64_t i = 0; i < kCheckpointPage; i += 7) ram_[p * kCheckpointPage + i] = static_cast<std::uint8_t>(p + i);
    for (std::uint32_t i = 0; i < 2; ++i) {
      vcpu::CpuState s;
      s.regs.rip = 0x1000 + i;
      s.regs.rax = 42 + i;
      s.msrs.push_back({.index = 0x10, .reserved = 0, .data = 12345 + i});
      cpus_.emplace_back(i, s);
    }
    devices_ = {1, 2, 3, 4};
    auto w = write_checkpoint(dir_, {.vcpus = 2, .mem_bytes = kRam, .nodes = 1}, ram_, cpus_, devices_);
    ASSERT_TRUE(w.ok()) << w.error().message;
    EXPECT_EQ(w->ram_pages_written, 3u);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  void write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ + "/" + name, std::ios::binary | std::ios::trunc) << bytes;
  }
  // The manifest with `from` replaced by `to` (once).
  void edit_manifest(const std::string& from, const std::string& to) {
    std::string m = read("manifest");
    auto at = m.find(from);
    ASSERT_NE(at, std::string::npos) << m;
    write("manifest", m.replace(at, from.size(), to));
  }
  void expect_refused(const std::string& needle) {
    auto c = open_checkpoint(dir_);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, Errc::kProtocol);
    EXPECT_NE(c.error().message.find(needle), std::string::npos) << c.error().message;
    EXPECT_EQ(c.error().message.find('\n'), std::string::npos);
    // The CLI refuses before it opens KVM: one line, exit 2, on any host.
    auto o = testing::run_process(SSI_BINARY, {"run", "--restore", dir_}, {"SSI_KVM_DEVICE=/nonexistent"});
    EXPECT_EQ(o.signal, 0);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_EQ(o.err.rfind("ssi: error: checkpoint ", 0), 0u) << o.err;
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
    // ... also for a restore on several nodes: before any node process.
    auto n = testing::run_process(SSI_BINARY, {"run", "--restore", dir_, "--nodes", "2"},
                                  {"SSI_KVM_DEVICE=/nonexistent"});
    EXPECT_EQ(n.exit_code, 2) << n.err;
    EXPECT_EQ(n.err, o.err);
  }

  std::string dir_;
  std::vector<std::uint8_t> ram_;
  std::vector<std::pair<std::uint32_t, vcpu::CpuState>> cpus_;
  std::vector<std::uint8_t> devices_;
};

TEST_F(CheckpointTest, ReadsBackExactly) {
  auto c = open_checkpoint(dir_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->config.vcpus, 2u);
  EXPECT_EQ(c->config.mem_bytes, kRam);
  EXPECT_EQ(c->config.kernel, KernelKind::kSsiElf);
  EXPECT_EQ(c->ram_pages, 3u);
  ASSERT_EQ(c->cpus.size(), 2u);
  EXPECT_TRUE(c->cpus[1] == cpus_[1].second);
  EXPECT_EQ(c->devices, devices_);
  std::vector<std::uint8_t> back(kRam, 0);
  ASSERT_TRUE(load_checkpoint_ram(*c, back).ok());
  EXPECT_EQ(back, ram_);
  std::vector<std::uint8_t> wrong(kRam / 2);
  EXPECT_FALSE(load_checkpoint_ram(*c, wrong).ok());
}

// A checkpoint of a machine on several nodes: its node count and TSC rate
// come back, and the TSC epoch a restore on several nodes starts from.
TEST_F(CheckpointTest, ReadsBackNodesAndTscRate) {
  ASSERT_TRUE(write_checkpoint(dir_, {.vcpus = 2, .mem_bytes = kRam, .nodes = 2, .tsc_khz = 1'000'000}, ram_,
                               cpus_, devices_).ok());
  EXPECT_NE(read("manifest").find("\nnodes 2\ntsc_khz 1000000\n"), std::string::npos) << read("manifest");
  auto c = open_checkpoint(dir_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->config.nodes, 2u);
  EXPECT_EQ(c->config.tsc_khz, 1'000'000u);
  EXPECT_EQ(saved_tsc(c->cpus[1]), 12346u);
  EXPECT_EQ(saved_tsc(vcpu::CpuState{}), 0u);
  // 2e9 cycles at 1 GHz: the epoch is 2 s before now; no rate: now.
  EXPECT_EQ(tsc_epoch_for(2'000'000'000, 1'000'000, 10'000'000'000), 8'000'000'000);
  EXPECT_EQ(tsc_epoch_for(2'000'000'000, 0, 10'000'000'000), 10'000'000'000);
  // Without the RAM check (a node of a restore): the manifest and states only.
  std::string r = read("ram.pages");
  r[r.size() - 1] ^= 1;
  write("ram.pages", r);
  EXPECT_TRUE(open_checkpoint(dir_, false).ok());
  expect_refused("fails its SHA-256");
}
TEST_F(CheckpointTest, RefusesBadNodesOrTscRate) {
  edit_manifest("nodes 1", "nodes 0");
  expect_refused("bad manifest line 'nodes'");
  edit_manifest("nodes 0", "nodes 1\ntsc_khz 0");
  expect_refused("bad manifest line 'tsc_khz'");
  edit_manifest("tsc_khz 0", "tsc_khz fast");
  expect_refused("bad manifest line 'tsc_khz'");
}

TEST_F(CheckpointTest, RefusesMissingManifest) {
  ::unlink((dir_ + "/manifest").c_str());
  expect_refused("no readable manifest");
}
TEST_F(CheckpointTest, RefusesOtherFormat) {
  edit_manifest("ssi-checkpoint", "qemu-savevm");
  expect_refused("not an ssi checkpoint");
}
TEST_F(CheckpointTest, RefusesWrongVersion) {
  edit_manifest("ssi-checkpoint 1", "ssi-checkpoint 2");
  expect_refused("format version 2");
}
TEST_F(CheckpointTest, RefusesTruncatedManifest) {
  std::string m = read("manifest");
  write("manifest", m.substr(0, m.size() / 2));
  expect_refused("manifest");
}
TEST_F(CheckpointTest, RefusesUnknownKey) {
  edit_manifest("nodes", "nodez");
  expect_refused("unknown manifest key");
}
TEST_F(CheckpointTest, RefusesBadConfig) {
  edit_manifest("vcpus 2", "vcpus 0");
  expect_refused("machine config");
}
TEST_F(CheckpointTest, RefusesTruncatedRam) {
  std::string r = read("ram.pages");
  write("ram.pages", r.substr(0, r.size() - 100));
  expect_refused("ram.pages has");
}
TEST_F(CheckpointTest, RefusesFlippedRamByte) {
  std::string r = read("ram.pages");
  r[5000] ^= 1;
  write("ram.pages", r);
  expect_refused("ram.pages fails its SHA-256");
}
TEST_F(CheckpointTest, RefusesFlippedCpuByte) {
  std::string s = read("cpu1.state");
  s[100] ^= 1;
  write("cpu1.state", s);
  expect_refused("cpu1.state fails its SHA-256");
}
TEST_F(CheckpointTest, RefusesMissingCpuFile) {
  ::unlink((dir_ + "/cpu1.state").c_str());
  expect_refused("cpu1.state is missing");
}
TEST_F(CheckpointTest, RefusesFewerFilesThanVcpus) {
  edit_manifest("vcpus 2", "vcpus 3");
  expect_refused("a 3-vCPU checkpoint has 5");
}
TEST_F(CheckpointTest, RefusesTruncatedDevices) {
  write("devices.state", "");
  expect_refused("devices.state has 0 bytes");
}

// A file whose hash the manifest agrees with but whose content is wrong:
// the inner checks (CpuState checksum, page offsets) still refuse it.
TEST_F(CheckpointTest, RefusesConsistentButBadContent) {
  std::vector<std::uint8_t> bad_ram(kRam, 0);
  bad_ram[kRam - 1] = 1;
  std::vector<std::pair<std::uint32_t, vcpu::CpuState>> one = {cpus_[0]};
  ASSERT_TRUE(write_checkpoint(dir_, {.vcpus = 1, .mem_bytes = kRam}, bad_ram, one, devices_).ok());
  ASSERT_TRUE(open_checkpoint(dir_).ok());
  edit_manifest("ram_bytes " + std::to_string(kRam), "ram_bytes " + std::to_string(kRam / 2));
  expect_refused("bad page offset");
}

// The options that go together: each misuse is one line and exit 2, before KVM.
TEST_F(CheckpointTest, CliRefusesOptionMisuse) {
  auto run = [](const std::vector<std::string>& args) {
    std::vector<std::string> a = {"run"};
    a.insert(a.end(), args.begin(), args.end());
    return testing::run_process(SSI_BINARY, a, {"SSI_KVM_DEVICE=/nonexistent"});
  };
  auto expect_one_line = [](const testing::ProcessOutcome& o, const std::string& needle) {
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
    EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
  };
  expect_one_line(run({"--kernel", "/bin/true", "--checkpoint-dir", dir_}), "needs --checkpoint-after");
  expect_one_line(run({"--kernel", "/bin/true", "--checkpoint-after", "1"}), "need --checkpoint-dir");
  expect_one_line(run({"--restore", dir_, "--kernel", "/bin/true"}), "no --kernel with it");
  expect_one_line(run({"--restore", dir_, "--nodes", "3"}), "more than the checkpoint's 2 vCPUs");
  expect_one_line(run({}), "--kernel is required (or --restore DIR)");
  // `ssi checkpoint ADDR --dir DIR`: its own misuse, and no machine there.
  auto ckpt = [](const std::vector<std::string>& args) {
    std::vector<std::string> a = {"checkpoint"};
    a.insert(a.end(), args.begin(), args.end());
    return testing::run_process(SSI_BINARY, a);
  };
  expect_one_line(ckpt({}), "ADDR and --dir are required");
  expect_one_line(ckpt({"127.0.0.1:1", "--dir"}), "a directory must follow --dir");
  expect_one_line(ckpt({"127.0.0.1:1", "--dir", "/tmp/x", "--bogus"}), "unknown argument --bogus");
  // Any directory name: the request is JSON-encoded (a quote used to be refused).
  expect_one_line(ckpt({"127.0.0.1:1", "--dir", "/tmp/a\"b\\c"}), "ssi: error: checkpoint: cannot connect");
  expect_one_line(ckpt({"127.0.0.1:1", "--dir", dir_ + "/c"}), "ssi: error: checkpoint: cannot connect");
}

// Devices: every one's registers survive save -> restore into a fresh board.
TEST(CheckpointDevices, BoardAndFwCfgRoundTrip) {
  vcpu::ExitRequest exit;
  Board a(-1, exit), b(-1, exit);
  FwCfg fa({.ram_bytes = kRam, .cpus = 2}), fb({.ram_bytes = kRam, .cpus = 2});
  ASSERT_TRUE(a.attach(fa).ok());
  ASSERT_TRUE(b.attach(fb).ok());
  auto out = [&](std::uint64_t port, std::uint8_t v) { a.pio().write(port, std::span(&v, 1)); };
  out(kCom1Port + 3, 0x83);  // DLAB
  out(kCom1Port + 0, 0x01);  // divisor 1
  out(kCom1Port + 3, 0x03);  // 8N1
  out(kCom1Port + 7, 0x5A);  // scratch
  out(kPicMasterPort + 1, 0xFB);
  out(kPicSlavePort + 1, 0xFF);
  std::uint8_t sel[2] = {0x05, 0x00};  // fw_cfg: CPU count item, then one byte read
  a.pio().write(kFwCfgPort, sel);
  std::uint8_t one = 0;
  a.pio().read(kFwCfgPort + 1, std::span(&one, 1));
  std::uint32_t redir[2] = {0x10 + 2 * 4, 0x0000A031};  // pin 4: vector 0x31, level
  a.mmio().write(kIoapicBase, std::span(reinterpret_cast<std::uint8_t*>(&redir[0]), 4));
  a.mmio().write(kIoapicBase + 0x10, std::span(reinterpret_cast<std::uint8_t*>(&redir[1]), 4));

  StateWriter w;
  a.save_devices(w);
  fa.save(w);
  StateReader r(w.bytes());
  ASSERT_TRUE(b.restore_devices(r));
  ASSERT_TRUE(fb.restore(r));
  EXPECT_TRUE(r.at_end());
  StateWriter again;
  b.save_devices(again);
  fb.save(again);
  EXPECT_EQ(again.bytes(), w.bytes());
  auto in = [&](std::uint64_t port) {
    std::uint8_t v = 0;
    b.pio().read(port, std::span(&v, 1));
    return v;
  };
  EXPECT_EQ(in(kCom1Port + 7), 0x5A);
  EXPECT_EQ(in(kCom1Port + 3), 0x03);
  EXPECT_EQ(in(kPicMasterPort + 1), 0xFB);
  EXPECT_EQ(in(kFwCfgPort + 1), 0);  // the second byte of the 16-bit count 2
  std::uint32_t v = 0;
  b.mmio().read(kIoapicBase + 0x10, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
  EXPECT_EQ(v & 0xFFFF, 0xA031u);
  // Short input is refused, not read past.
  StateReader short_r(std::span(w.bytes()).first(10));
  EXPECT_FALSE(b.restore_devices(short_r));
}

}  // namespace
}  // namespace ssi::machine
