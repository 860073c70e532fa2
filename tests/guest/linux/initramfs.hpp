// The Linux guest tests' initramfs: a cpio "newc" archive holding /init
// (linux/init.c, static), /dev/console and /dev/kmsg. Built in memory by the
// QEMU test and written to a file by make_initramfs for `ssi run --initrd`.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ssi::guest {

class Cpio {
 public:
  void dir(const std::string& name) { entry(name, 040755, {}, 0, 0); }
  void file(const std::string& name, const std::vector<std::uint8_t>& data) {
    entry(name, 0100755, data, 0, 0);
  }
  void chardev(const std::string& name, unsigned major, unsigned minor) {
    entry(name, 020600, {}, major, minor);
  }
  std::vector<std::uint8_t> finish() {
    entry("TRAILER!!!", 0, {}, 0, 0);
    return std::move(out_);
  }

 private:
  void entry(const std::string& name, unsigned mode, const std::vector<std::uint8_t>& data,
             unsigned rmajor, unsigned rminor) {
    char hdr[111];
    std::snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X",
                  ++ino_, mode, 0u, 0u, 1u, 0u, data.size(), 0u, 0u, rmajor, rminor,
                  name.size() + 1, 0u);
    out_.insert(out_.end(), hdr, hdr + 110);
    out_.insert(out_.end(), name.begin(), name.end());
    out_.push_back(0);
    pad();
    out_.insert(out_.end(), data.begin(), data.end());
    pad();
  }
  void pad() {
    while (out_.size() % 4) out_.push_back(0);
  }
  std::vector<std::uint8_t> out_;
  unsigned ino_ = 0;
};

// /init plus the two device nodes it writes to.
inline std::vector<std::uint8_t> test_initramfs(const std::vector<std::uint8_t>& init) {
  Cpio cpio;
  cpio.dir("dev");
  cpio.chardev("dev/console", 5, 1);
  cpio.chardev("dev/kmsg", 1, 11);
  cpio.file("init", init);
  return cpio.finish();
}

}  // namespace ssi::guest
