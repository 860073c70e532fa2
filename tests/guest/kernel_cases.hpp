// The guest kernels and what each must print when it passes: shared by the
// KVM run tests and the QEMU run tests.
#pragma once

#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace ssi::machine {

inline std::vector<std::string> guest_kernels() {
  std::vector<std::string> out;
  std::stringstream ss(SSI_GUEST_KERNELS);
  for (std::string k; std::getline(ss, k, ',');) out.push_back(k);
  return out;
}

inline std::string guest_kernel_path(const std::string& name) {
  return std::string(SSI_GUEST_KERNEL_DIR) + "/" + name + ".elf";
}

struct RunCase {
  std::string kernel;
  unsigned vcpus;
};

inline std::vector<RunCase> guest_run_cases() {
  std::vector<RunCase> out;
  for (const auto& k : guest_kernels()) {
    for (unsigned v : {1u, 2u, 4u}) out.push_back({k, v});
  }
  return out;
}

inline std::string run_case_name(const RunCase& c) {
  return c.kernel + "_" + std::to_string(c.vcpus) + "vcpu";
}

// gtest prints a parameter with this instead of its bytes.
inline void PrintTo(const RunCase& c, std::ostream* os) { *os << run_case_name(c); }

// Serial output a passing run must contain (besides exiting with 0).
inline std::vector<std::string> expected_output(const RunCase& c) {
  const std::string n = std::to_string(c.vcpus);
  if (c.kernel == "hello") return {"hello from cpu 0 of " + n, "all " + n + " cpus said hello"};
  if (c.kernel == "counter") return {"expected=" + std::to_string(100000 * c.vcpus)};
  if (c.kernel == "ipi") {
    if (c.vcpus == 1) return {"round trips"};
    return {"round trips", "level interrupt on cpu " + std::to_string(c.vcpus - 1) +
                               ": remote IRR cleared by its EOI"};
  }
  if (c.kernel == "litmus") {
    std::vector<std::string> out;
    for (const char* t : {"SB+mfence", "MP", "LB", "2+2W"})
      out.push_back(std::string(t) + ": rounds=10000 forbidden=0");
    out.push_back(c.vcpus >= 4 ? "IRIW: rounds=10000 forbidden=0" : "IRIW: skipped");
    return out;
  }
  if (c.kernel == "timer") return {"timer: ", " ticks after "};  // >= 10: exit code 0
  if (c.kernel == "compute") return {"compute: iterations=100000000"};
  if (c.kernel == "dsmbench") {
    std::vector<std::string> out{"dsmbench: tsc_khz=", "dsmbench: private cpus=" + n};
    if (c.vcpus > 1) out.push_back("dsmbench: pingpong rounds=200");
    out.push_back("dsmbench: all checks passed");
    return out;
  }
  if (c.kernel == "nmi") {
    if (c.vcpus == 1) return {"nmi: skipped"};
    return {"nmi: 200 round trips", "nmi: burst of 20000 sent", "target answers after it"};
  }
  if (c.kernel == "tour") return {"tour: counter=" + std::to_string(20000 * c.vcpus), "memory is coherent"};
  return {};
}

}  // namespace ssi::machine
