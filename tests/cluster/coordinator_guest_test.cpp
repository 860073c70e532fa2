// `ssi coordinator --kernel ...` with `ssi node` processes on loopback:
// the coordinator takes the guest machine, every node checks its copy of
// the kernel against the coordinator's SHA-256, and a node that cannot run
// the guest (different file, no KVM) stops the machine with one clear line.
#include <gtest/gtest.h>

#include <cstdlib>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssi/free_port.hpp"
#include "ssi/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using ssi::testing::ProcessOutcome;
using ssi::testing::run_process;

// The processes a test starts form one machine and share its secret, as the
// launchers arrange (docs/security.md); children inherit it.
const bool kMachineSecretSet = ::setenv("SSI_SECRET", std::string(64, 'a').c_str(), 1) == 0;

int error_lines(const std::string& err) {
  int n = 0;
  for (std::size_t at = err.find("ssi: error:"); at != std::string::npos; at = err.find("ssi: error:", at + 1)) ++n;
  return n;
}

struct GuestRun {
  ProcessOutcome coordinator;
  nlohmann::json json;
};

// Starts the coordinator for `kernel` (and `extra` options), runs `between`
// (e.g. change a file), then two nodes on loopback.
GuestRun run_guest(const std::string& kernel, const std::function<void()>& between,
                   const std::vector<std::string>& extra = {}) {
  std::string port = std::to_string(ssi::testing::free_loopback_port());
  std::string json = ::testing::TempDir() + "ssi-coord-guest-" + std::to_string(getpid()) + ".json";
  GuestRun out;
  std::vector<std::string> args{"coordinator", "--listen", "127.0.0.1:" + port, "--nodes", "2",
                                "--kernel", kernel, "--vcpus", "2", "-m", "64",
                                "--append", "console=ttyS0 x=1", "--json", json};
  args.insert(args.end(), extra.begin(), extra.end());
  std::thread coordinator([&] { out.coordinator = run_process(SSI_BINARY, args, {}, 60s); });
  std::this_thread::sleep_for(300ms);  // nodes retry joining anyway; this orders `between`
  between();
  std::thread nodes[2];
  for (int id = 0; id < 2; ++id)
    nodes[id] = std::thread([&, id] {
      run_process(SSI_BINARY, {"node", "--coordinator", "127.0.0.1:" + port, "--id",
                               std::to_string(id), "--join-timeout", "20"}, {}, 60s);
    });
  for (auto& t : nodes) t.join();
  coordinator.join();
  std::ifstream in(json);
  out.json = nlohmann::json::parse(in, nullptr, false);
  std::remove(json.c_str());
  return out;
}

std::string copy_of_kernel(const char* tag) {
  std::string path = ::testing::TempDir() + "ssi-kernel-" + tag + "-" + std::to_string(getpid()) + ".elf";
  std::filesystem::copy_file(SSI_GUEST_KERNEL_DIR "/hello.elf", path,
                             std::filesystem::copy_options::overwrite_existing);
  return path;
}

TEST(CoordinatorGuest, ANodeWhoseKernelFileDiffersRefusesWithOneLineAndExit2) {
  std::string kernel = copy_of_kernel("differs");
  auto r = run_guest(kernel, [&] { std::ofstream(kernel, std::ios::app) << "changed"; });
  std::remove(kernel.c_str());
  EXPECT_EQ(r.coordinator.exit_code, 2) << r.coordinator.err;
  EXPECT_NE(r.coordinator.err.find("is not the coordinator's file"), std::string::npos) << r.coordinator.err;
  EXPECT_EQ(error_lines(r.coordinator.err), 1) << r.coordinator.err;
}

TEST(CoordinatorGuest, ANodeWhoseInitrdDiffersRefusesWithOneLineAndExit2) {
  std::string kernel = copy_of_kernel("initrd-k");
  std::string initrd = ::testing::TempDir() + "ssi-initrd-" + std::to_string(getpid()) + ".cpio";
  std::ofstream(initrd) << "an initrd";
  auto r = run_guest(kernel, [&] { std::ofstream(initrd, std::ios::app) << " changed"; },
                     {"--initrd", initrd});
  std::remove(kernel.c_str());
  std::remove(initrd.c_str());
  EXPECT_EQ(r.coordinator.exit_code, 2) << r.coordinator.err;
  EXPECT_NE(r.coordinator.err.find("initrd " + initrd + " is not the coordinator's file"),
            std::string::npos)
      << r.coordinator.err;
  EXPECT_EQ(error_lines(r.coordinator.err), 1) << r.coordinator.err;
}

TEST(CoordinatorGuest, NodesGetTheMachineAndANodeWithoutKvmSaysSoInOneLine) {
  if (::access("/dev/kvm", R_OK | W_OK) == 0) GTEST_SKIP() << "/dev/kvm is usable here: the guest would run";
  std::string kernel = copy_of_kernel("nokvm");
  auto r = run_guest(kernel, [] {});
  // The configuration the coordinator distributed, with the kernel's hash
  // (checked against sha256sum: the nodes passed that check, then met no KVM).
  auto sum = run_process("/usr/bin/sha256sum", {kernel}, {}, 10s);
  std::remove(kernel.c_str());
  EXPECT_EQ(r.coordinator.exit_code, 2) << r.coordinator.err;
  EXPECT_NE(r.coordinator.err.find("no usable KVM on this node"), std::string::npos) << r.coordinator.err;
  EXPECT_EQ(r.coordinator.err.find("is not the coordinator's file"), std::string::npos) << r.coordinator.err;
  EXPECT_EQ(error_lines(r.coordinator.err), 1) << r.coordinator.err;
  ASSERT_TRUE(r.json.is_object());
  EXPECT_EQ(r.json["config"]["workload"], "guest");
  EXPECT_EQ(r.json["config"]["vcpus"], 2);
  EXPECT_EQ(r.json["config"]["mem_bytes"], 64 << 20);
  EXPECT_EQ(r.json["config"]["append"], "console=ttyS0 x=1");
  EXPECT_EQ(r.json["config"]["kernel_sha256"].get<std::string>(), sum.out.substr(0, 64));
}

TEST(CoordinatorGuest, BadMachineOptionsAreOneLineAndExit2) {
  std::string k = SSI_GUEST_KERNEL_DIR "/hello.elf";
  for (auto args : std::vector<std::vector<std::string>>{
           {"coordinator", "--nodes", "2", "--kernel", "/nonexistent.elf"},
           {"coordinator", "--nodes", "2", "--kernel", k, "--initrd", "/nonexistent.cpio"},
           {"coordinator", "--nodes", "2", "--kernel", k, "--vcpus", "2", "--placement", "0,7"},
           {"coordinator", "--nodes", "2", "--kernel", k, "--vcpus", "1"},
           {"coordinator", "--nodes", "2", "--kernel", k, "--placement", "a,b"}}) {
    auto r = run_process(SSI_BINARY, args, {}, 10s);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
