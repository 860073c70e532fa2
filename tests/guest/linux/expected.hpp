// What a Linux guest booted on ssi's boot data must print, shared by the
// QEMU/TCG test (linux_qemu_test) and the KVM test (linux_kvm_test): the
// kernel's own log lines for the CPU count, NUMA nodes and SRAT, and the
// lines /init (linux/init.c) prints from sysfs.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ssi/subprocess.hpp"

namespace ssi::guest {

// Debian's kernel through scripts/fetch-debian-kernel (or $SSI_LINUX_BZIMAGE);
// empty if it cannot be had.
inline std::string fetch_linux_kernel(const char* fetch_script) {
  if (const char* k = std::getenv("SSI_LINUX_BZIMAGE")) return k;
  auto o = ssi::testing::run_process(fetch_script, {}, {}, std::chrono::seconds(180));
  if (o.exit_code != 0) return {};
  std::string path = o.out.substr(0, o.out.find('\n'));
  return ::access(path.c_str(), R_OK) == 0 ? path : std::string();
}

inline bool has(const std::string& log, const std::string& what) {
  return log.find(what) != std::string::npos;
}

struct LinuxCase {
  unsigned vcpus, nodes;
};

// What the guest must report for `c`: CPUs in contiguous blocks per node,
// SLIT 10 on the diagonal and `remote` elsewhere; `online` CPUs started
// (0: all, else Linux's maxcpus=).
inline std::vector<std::string> expected_lines(const LinuxCase& c, unsigned remote,
                                               unsigned online = 0) {
  if (online == 0) online = c.vcpus;
  auto range = [](unsigned n) { return n == 1 ? std::string("0") : "0-" + std::to_string(n - 1); };
  const std::string nodes_word = c.nodes == 1 ? " node, " : " nodes, ";
  const std::string cpus_word = online == 1 ? " CPU" : " CPUs";
  std::vector<std::string> out{
      "smp: Brought up " + std::to_string(c.nodes) + nodes_word + std::to_string(online) +
          cpus_word,
      "smpboot: Allowing " + std::to_string(c.vcpus) + " CPUs, 0 hotplug CPUs",
      "ssi-init: cpus-online " + range(online), "ssi-init: nodes-online " + range(c.nodes)};
  for (unsigned i = 0; i < c.nodes; ++i) {
    std::string d;
    for (unsigned j = 0; j < c.nodes; ++j)
      d += (j ? " " : "") + std::to_string(i == j ? 10 : remote);
    out.push_back("ssi-init: node" + std::to_string(i) + "-distance " + d);
  }
  for (unsigned cpu = 0; cpu < c.vcpus; ++cpu) {
    const unsigned node = cpu * c.nodes / c.vcpus;
    char line[64];
    std::snprintf(line, sizeof(line), "SRAT: PXM %u -> APIC 0x%02x -> Node %u", node, cpu, node);
    out.push_back(line);
  }
  return out;
}

}  // namespace ssi::guest
