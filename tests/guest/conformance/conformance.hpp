// Reads the conformance kernel's lines ("conform: NAME STATUS ...") and the
// expectation files next to this header: expected.txt ("NAME STATUS", what
// the architecture says and ssi must print) and reference_differences.txt
// ("NAME STATUS reason": where the QEMU reference prints something else, why).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "ssi/subprocess.hpp"

namespace ssi::conformance {

using Results = std::map<std::string, std::string>;  // check name -> ok / skip / FAIL

inline Results parse_output(const std::string& out) {
  Results r;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string tag, name, status;
    if (!(words >> tag >> name >> status) || tag != "conform:") continue;
    if (name == "start" || name == "done," || name == "unexpected") continue;
    r[name] = status;
  }
  return r;
}

// "NAME STATUS [reason...]" lines; '#' starts a comment line.
inline Results read_table(const std::string& file, std::map<std::string, std::string>* reasons) {
  Results r;
  std::ifstream in(std::string(SSI_CONFORM_DIR) + "/" + file);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string name, status, reason;
    words >> name >> status;
    std::getline(words, reason);
    r[name] = status;
    if (reasons) (*reasons)[name] = reason;
  }
  return r;
}

// Every difference between `got` and `want`, one per line ("" if none).
inline std::string diff(const Results& got, const Results& want) {
  std::string d;
  for (const auto& [name, status] : want) {
    auto it = got.find(name);
    std::string g = it == got.end() ? "absent" : it->second;
    if (g != status) d += name + ": got " + g + ", want " + status + "\n";
  }
  for (const auto& [name, status] : got)
    if (!want.count(name)) d += name + ": unexpected check (" + status + ")\n";
  return d;
}

inline constexpr const char* kQemu = "/usr/bin/qemu-system-x86_64";

// Runs conform.elf under QEMU (`pc`, QEMU's own multiboot loader) with
// `accel` and `cpu`, and checks that it prints expected.txt except for the
// lines `differences_file` documents (with a reason each), and that its
// exit code counts exactly the documented FAIL lines.
inline void expect_reference(const std::string& accel, const std::string& cpu,
                             const std::string& differences_file) {
  auto o = ssi::testing::run_process(
      kQemu,
      {"-machine", "pc", "-accel", accel, "-cpu", cpu, "-smp", "1", "-m", "64", "-kernel",
       SSI_CONFORM_KERNEL, "-display", "none", "-serial", "stdio", "-monitor", "none",
       "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"},
      {}, std::chrono::seconds(120));
  ASSERT_FALSE(o.timed_out) << o.out << o.err;
  Results want = read_table("expected.txt", nullptr);
  ASSERT_FALSE(want.empty()) << "expected.txt unreadable";
  std::map<std::string, std::string> reasons;
  int failing = 0;
  for (const auto& [name, status] : read_table(differences_file, &reasons)) {
    ASSERT_TRUE(want.count(name)) << "documented difference for unknown check " << name;
    ASSERT_FALSE(reasons[name].empty()) << "difference without a reason: " << name;
    if (status == "absent")
      want.erase(name);
    else
      want[name] = status;
    failing += status == "FAIL";
  }
  EXPECT_EQ(diff(parse_output(o.out), want), "") << o.out << o.err;
  EXPECT_EQ(o.exit_code, (failing << 1) | 1)
      << "isa-debug-exit carries the number of failed checks\n" << o.out;
}

}  // namespace ssi::conformance
