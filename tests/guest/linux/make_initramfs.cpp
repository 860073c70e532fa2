// make_initramfs INIT OUT: writes the Linux guest tests' initramfs (see
// initramfs.hpp) for `ssi run --initrd OUT`.
#include <fstream>
#include <iostream>
#include <iterator>

#include "initramfs.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: make_initramfs INIT OUT\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::vector<std::uint8_t> init((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
  if (init.empty()) {
    std::cerr << "make_initramfs: cannot read " << argv[1] << "\n";
    return 1;
  }
  const auto archive = ssi::guest::test_initramfs(init);
  std::ofstream out(argv[2], std::ios::binary);
  out.write(reinterpret_cast<const char*>(archive.data()),
            static_cast<std::streamsize>(archive.size()));
  return out.good() ? 0 : 1;
}
