// Runs a kernel that one of ssi's foreign loaders (kernel_boot.hpp) put into
// guest RAM under QEMU/TCG: the RAM image goes to QEMU's generic loader (only
// the parts that are not zero), and qemu/entry_shim.S enters the loader's
// EntryState from a hand-off block at 0x500. QEMU supplies the devices
// (16550, fw_cfg, isa-debug-exit, LAPIC/IOAPIC), ssi everything the loader
// writes: the kernel, boot data, ACPI tables, page tables, GDT.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "qemu_handoff.hpp"
#include "ssi/kernel_boot.hpp"
#include "ssi/lazy_ram.hpp"
#include "ssi/subprocess.hpp"

namespace ssi::machine {

inline constexpr const char* kQemuBinary = "/usr/bin/qemu-system-x86_64";

class ForeignQemu {
 public:
  ForeignQemu() {
    char tmpl[] = "/tmp/ssi-foreign-qemu-XXXXXX";
    if (::mkdtemp(tmpl)) dir_ = tmpl;
  }
  ~ForeignQemu() {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  const std::string& dir() const { return dir_; }

  // Loads `kernel` with ssi's loader into `mem` bytes of RAM; false (with a
  // gtest failure) if the loader refused.
  bool load(KernelKind kind, const std::vector<std::uint8_t>& kernel, std::uint64_t mem,
            const ForeignBootOptions& options) {
    map_ = MemoryMap::pc(mem).value();
    backing_.emplace(map_.ram_bytes());
    if (backing_->span().size() != map_.ram_bytes()) {
      ADD_FAILURE() << "mmap of guest RAM failed";
      return false;
    }
    ram_.emplace(GuestRam::make(map_, backing_->span()).value());
    auto plan = load_foreign_kernel(kind, kernel, *ram_, options);
    if (!plan.ok()) {
      ADD_FAILURE() << plan.error().to_string();
      return false;
    }
    write_qemu_handoff(*ram_, plan->bsp,
                       kind == KernelKind::kLinux ? ShimMode::kLong64 : ShimMode::kProtected32);
    return true;
  }

  // Runs QEMU on the loaded RAM; `extra` adds QEMU options.
  ssi::testing::ProcessOutcome run(unsigned vcpus, std::chrono::seconds limit,
                                   std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-machine",
                                  "pc",
                                  "-accel",
                                  "tcg",
                                  "-smp",
                                  std::to_string(vcpus),
                                  "-m",
                                  std::to_string(map_.ram_bytes() >> 20) + "M",
                                  "-bios",
                                  SSI_ENTRY_SHIM,
                                  "-display",
                                  "none",
                                  "-serial",
                                  "stdio",
                                  "-monitor",
                                  "none",
                                  "-no-reboot",
                                  "-device",
                                  "isa-debug-exit,iobase=0xf4,iosize=0x04"};
    for (auto& a : ram_image_args()) args.push_back(a);
    for (auto& a : extra) args.push_back(a);
    return ssi::testing::run_process(kQemuBinary, args, {}, limit);
  }

 private:
  // One raw file per run of non-zero 64 KiB blocks of RAM (QEMU's RAM starts
  // zeroed); [0xA0000, 1 MiB) is ROM/VGA in QEMU and holds nothing of ours.
  std::vector<std::string> ram_image_args() {
    constexpr std::uint64_t kBlock = 64 * 1024;
    std::vector<std::string> args;
    for (const Region& r : map_.regions()) {
      if (r.kind != RegionKind::kRam && r.kind != RegionKind::kBootArea) continue;
      const std::uint64_t end = r.kind == RegionKind::kBootArea ? 0xA0000 : r.end();
      constexpr std::uint64_t kNone = ~0ull;
      std::uint64_t run_start = kNone;
      for (std::uint64_t a = r.base.value(); a <= end; a += kBlock) {
        const bool data = a < end && nonzero(a, std::min(kBlock, end - a));
        if (data && run_start == kNone) run_start = a;
        if (!data && run_start != kNone) {
          args.push_back("-device");
          args.push_back("loader,file=" + dump(run_start, a - run_start) +
                         ",addr=" + std::to_string(run_start) + ",force-raw=on");
          run_start = kNone;
        }
      }
    }
    return args;
  }
  bool nonzero(std::uint64_t gpa, std::uint64_t len) {
    auto s = ram_->at(Gpa{gpa}, len).value();
    for (auto b : s) {
      if (b) return true;
    }
    return false;
  }
  std::string dump(std::uint64_t gpa, std::uint64_t len) {
    std::string path = dir_ + "/ram-" + std::to_string(gpa) + ".bin";
    auto s = ram_->at(Gpa{gpa}, len).value();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size()));
    return path;
  }

  std::string dir_;
  MemoryMap map_;
  std::optional<ssi::testing::LazyRam> backing_;
  std::optional<GuestRam> ram_;
};

}  // namespace ssi::machine
