// QEMU habits on ssi's command line, without CLI11 (cli.cpp is the only TU
// that includes it): QEMU's single-dash spellings, `-smp` topologies and
// `-m` sizes in MiB.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace ssi::cli {

// argv[1..] with QEMU's spellings rewritten to ssi's (-smp -> --smp,
// -kernel -> --kernel, -nographic -> --nographic, ...).
std::vector<std::string> qemu_aliases(int argc, char** argv);

// `-smp N[,cpus=N][,maxcpus=N][,sockets=S][,dies=D][,cores=C][,threads=T]`
// -> vCPU count. Without N, the count is the topology's product; with
// both, they must agree (ssi has no CPU hotplug, so maxcpus = cpus).
Result<std::uint32_t> parse_smp(std::string_view text);

// `-m SIZE`: a bare number means MiB as in QEMU; K, M, G, T suffixes
// (and KiB, MiB, ...) as usual.
Result<std::uint64_t> parse_mem(std::string_view text);

}  // namespace ssi::cli
