// The single-node machine wired to fake vCPUs (no /dev/kvm): memory slots
// carry the loaded kernel and boot area, the BSP starts at the ELF entry in
// long mode, INIT+SIPI through the LAPIC starts an AP at the SIPI page under
// the ssi convention, COM1 reaches the console and the debug-exit port ends
// the run with its code.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "elf_builder.hpp"
#include "ssi/boot.hpp"
#include "ssi/machine.hpp"
#include "vcpu/fake_vcpu.hpp"

namespace ssi::machine {
namespace {

using vcpu::testing::FakeVcpu;

class FakeVm final : public vcpu::Vm {
 public:
  explicit FakeVm(std::vector<std::unique_ptr<FakeVcpu>>& pool) : pool_(pool) {}
  Result<void> add_memory(const vcpu::MemorySlot& slot) override {
    slots.push_back(slot);
    return ok();
  }
  Result<std::unique_ptr<vcpu::Vcpu>> create_vcpu(VcpuId id) override {
    if (id.value() >= pool_.size() || !pool_[id.value()]) {
      return make_error(Errc::kNotFound, "no fake vcpu scripted");
    }
    return std::unique_ptr<vcpu::Vcpu>(std::move(pool_[id.value()]));
  }
  std::vector<vcpu::MemorySlot> slots;

 private:
  std::vector<std::unique_ptr<FakeVcpu>>& pool_;
};

class FakeHypervisor final : public vcpu::Hypervisor {
 public:
  Result<vcpu::CpuidEntries> supported_cpuid() override { return vcpu::CpuidEntries{}; }
  Result<std::unique_ptr<vcpu::Vm>> create_vm(const vcpu::VmOptions&) override {
    auto vm = std::make_unique<FakeVm>(pool);
    last_vm = vm.get();
    return std::unique_ptr<vcpu::Vm>(std::move(vm));
  }
  int max_vcpus() const override { return 64; }
  std::vector<std::unique_ptr<FakeVcpu>> pool;
  FakeVm* last_vm = nullptr;
};

std::vector<std::uint8_t> le32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::string drain() {
    ::close(fds[1]);
    fds[1] = ::dup(fds[0]);  // keep the destructor's close balanced
    std::string s;
    char buf[256];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) s.append(buf, static_cast<std::size_t>(n));
    return s;
  }
  int fds[2];
};

TEST(MachineRun, BootsBspStartsApViaSipiAndExitsWithGuestCode) {
  ssi::testing::ElfBuilder elf;
  elf.segments[0].data = {0xFA, 0xF4, 0xEB, 0xFD};  // cli; hlt; jmp
  auto file = elf.build();
  auto map = MemoryMap::pc(16 * kMiB).value();
  auto image = parse_elf(file, map);
  ASSERT_TRUE(image.ok()) << image.error().to_string();

  FakeHypervisor hv;
  hv.pool.push_back(std::make_unique<FakeVcpu>(VcpuId{0}));
  hv.pool.push_back(std::make_unique<FakeVcpu>(VcpuId{1}));
  FakeVcpu* bsp = hv.pool[0].get();
  FakeVcpu* ap = hv.pool[1].get();
  constexpr std::uint64_t kIcrLow = kLapicBase + 0x300, kIcrHigh = kLapicBase + 0x310;
  bsp->push_mmio_write(kLapicBase + 0xF0, le32(0x1FF))  // enable the LAPIC
      .push_mmio_write(kIcrHigh, le32(1u << 24))
      .push_mmio_write(kIcrLow, le32(0x4500))            // INIT
      .push_mmio_write(kIcrLow, le32(0x4600 | 0x08))     // SIPI, vector 8
      .push_io_out(0x3F8, {'o'})
      .push_io_out(0x3F8, {'k'})
      .push_io_out(0x3F8, {'\n'})
      .push_io_out(SSI_PORT_EXIT, {5})
      .then([ap] {
        // Let the AP take its SIPI before the machine stops (bounded).
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (ap->runs() == 0 && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
  ap->push_simple(vcpu::ExitKind::kHlt);

  Pipe console;
  MachineConfig cfg{.vcpus = 2, .map = map, .console_fd = console.fds[1]};
  auto machine = Machine::create(hv, cfg);
  ASSERT_TRUE(machine.ok()) << machine.error().to_string();
  KernelImage kernel{.path = "test", .kind = KernelKind::kSsiElf, .file = file, .elf = *image};
  ASSERT_TRUE((*machine)->load(&kernel).ok());

  // Memory slots: every RAM region, with the kernel and boot info in place.
  ASSERT_NE(hv.last_vm, nullptr);
  std::uint64_t slot_bytes = 0;
  const std::uint8_t* kernel_bytes = nullptr;
  const std::uint8_t* boot_bytes = nullptr;
  for (const auto& s : hv.last_vm->slots) {
    slot_bytes += s.size;
    auto* host = static_cast<const std::uint8_t*>(s.host);
    if (s.gpa.value() == 0) boot_bytes = host;
    if (s.gpa.value() <= kBootAreaEnd && kBootAreaEnd < s.gpa.value() + s.size) {
      kernel_bytes = host + (kBootAreaEnd - s.gpa.value());
    }
  }
  EXPECT_EQ(slot_bytes, 16 * kMiB);
  ASSERT_NE(kernel_bytes, nullptr);
  EXPECT_EQ(kernel_bytes[0], 0xFA);
  ASSERT_NE(boot_bytes, nullptr);
  std::uint64_t magic;
  std::memcpy(&magic, boot_bytes + kBootInfoGpa, sizeof magic);
  EXPECT_EQ(magic, SSI_BOOT_MAGIC);

  // The BSP starts at the ELF entry in long mode.
  EXPECT_EQ(bsp->regs.rip, image->entry);
  EXPECT_EQ(bsp->regs.rdi, kBootInfoGpa);
  EXPECT_EQ(bsp->sregs.cs.l, 1);
  EXPECT_NE(bsp->sregs.efer & kEferLma, 0u);

  auto code = (*machine)->run();
  ASSERT_TRUE(code.ok()) << code.error().to_string();
  EXPECT_EQ(*code, 5);
  EXPECT_EQ(console.drain(), "ok\n");
  // The AP was started at the SIPI page in long mode with its cpu index.
  EXPECT_EQ(ap->regs.rip, 0x8000u);
  EXPECT_EQ(ap->regs.rsi, 1u);
  EXPECT_EQ(ap->sregs.tr.selector, SSI_SEL_TSS0 + 16);
  EXPECT_GE(ap->runs(), 1);
}

TEST(MachineRun, VcpuFailureStopsTheMachineWithANamedError) {
  ssi::testing::ElfBuilder elf;
  auto file = elf.build();
  auto map = MemoryMap::pc(8 * kMiB).value();
  auto image = parse_elf(file, map).value();
  FakeHypervisor hv;
  hv.pool.push_back(std::make_unique<FakeVcpu>(VcpuId{0}));
  hv.pool[0]->push_simple(vcpu::ExitKind::kShutdown);  // a triple fault
  Pipe console;
  MachineConfig cfg{.vcpus = 1, .map = map, .console_fd = console.fds[1]};
  auto machine = Machine::create(hv, cfg);
  ASSERT_TRUE(machine.ok()) << machine.error().to_string();
  KernelImage kernel{.path = "test", .kind = KernelKind::kSsiElf, .file = file, .elf = image};
  ASSERT_TRUE((*machine)->load(&kernel).ok());
  auto code = (*machine)->run();
  ASSERT_FALSE(code.ok());
  EXPECT_EQ(code.error().message.rfind("vcpu 0: ", 0), 0u) << code.error().message;
}

TEST(MachineRun, SigintStopsAHaltedGuestWithExitCode130) {
  ssi::testing::ElfBuilder elf;
  auto file = elf.build();
  auto map = MemoryMap::pc(8 * kMiB).value();
  auto image = parse_elf(file, map).value();
  FakeHypervisor hv;
  hv.pool.push_back(std::make_unique<FakeVcpu>(VcpuId{0}));
  hv.pool[0]->push_simple(vcpu::ExitKind::kHlt);  // parks (IF=0 guest: no wake-up)
  Pipe console;
  MachineConfig cfg{.vcpus = 1, .map = map, .console_fd = console.fds[1]};
  StopSignalBlock block;  // this thread and the ones started below
  auto machine = Machine::create(hv, cfg);
  ASSERT_TRUE(machine.ok()) << machine.error().to_string();
  KernelImage kernel{.path = "test", .kind = KernelKind::kSsiElf, .file = file, .elf = image};
  ASSERT_TRUE((*machine)->load(&kernel).ok());
  std::thread sender([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::kill(::getpid(), SIGINT);
  });
  auto code = run_until_exit(**machine);
  sender.join();
  ASSERT_TRUE(code.ok()) << code.error().to_string();
  EXPECT_EQ(*code, 128 + SIGINT);
}

}  // namespace
}  // namespace ssi::machine
