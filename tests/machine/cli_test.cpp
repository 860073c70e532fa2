// Runs the built `ssi` binary with bad input: every case must exit with code
// 2 and exactly one line on stderr, never a signal (core dump).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "elf_builder.hpp"

extern char** environ;

namespace {

struct Outcome {
  int exit_code = -1;
  int signal = 0;
  std::string out, err;
};

// Runs SSI_BINARY with `args` (and extra environment), bounded by 20 s.
Outcome run_ssi(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv_s{SSI_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s(env);
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  Outcome o;
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) return o;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return o;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? o.out : o.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  if (open_fds > 0) ::kill(pid, SIGKILL);  // a hang is a failure, not a stuck suite
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  return o;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ssi-cli-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string write_file(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string good_kernel() { return write_file("good.elf", ssi::testing::ElfBuilder{}.build()); }

  // Exit code 2, one line on stderr starting "ssi: error: " and containing `needle`.
  static void expect_usage_error(const Outcome& o, const std::string& needle) {
    EXPECT_EQ(o.signal, 0) << "killed by signal " << o.signal;
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_EQ(o.err.rfind("ssi: error: ", 0), 0u) << o.err;
    ASSERT_FALSE(o.err.empty());
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "expected exactly one line: " << o.err;
    EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
  }

  std::string dir_;
};

TEST_F(CliTest, MissingKernelFile) {
  expect_usage_error(run_ssi({"run", "--kernel", dir_ + "/nope.elf"}),
                     "nope.elf: No such file or directory");
}

TEST_F(CliTest, KernelOptionIsRequired) {
  expect_usage_error(run_ssi({"run", "--vcpus", "1"}), "--kernel is required");
}

TEST_F(CliTest, NonElfKernel) {
  auto path = write_file("text.elf", {'h', 'e', 'l', 'l', 'o', '\n'});
  expect_usage_error(run_ssi({"run", "--kernel", path}), "not an ELF file");
}

TEST_F(CliTest, CorruptElfKernel) {
  auto bytes = ssi::testing::ElfBuilder{}.build();
  bytes.resize(70);  // header intact, program headers cut off
  auto path = write_file("cut.elf", bytes);
  expect_usage_error(run_ssi({"run", "--kernel", path}), "program headers");
}

TEST_F(CliTest, OverlappingSegments) {
  ssi::testing::ElfBuilder b;
  b.segments = {{0x100000, {0xF4}, 0x2000, PF_R | PF_X}, {0x101000, {0}, 0x1000, PF_R | PF_W}};
  expect_usage_error(run_ssi({"run", "--kernel", write_file("ovl.elf", b.build())}), "overlap");
}

TEST_F(CliTest, KernelDoesNotFitInMemory) {
  ssi::testing::ElfBuilder b;
  b.segments[0].paddr = 16 << 20;
  b.entry = 16 << 20;
  expect_usage_error(run_ssi({"run", "-m", "8M", "--kernel", write_file("big.elf", b.build())}),
                     "outside guest RAM");
}

TEST_F(CliTest, MemoryTooSmall) {
  expect_usage_error(run_ssi({"run", "-m", "1M", "--kernel", good_kernel()}), "too small");
}

TEST_F(CliTest, MemorySizeGarbage) {
  expect_usage_error(run_ssi({"run", "--mem", "lots", "--kernel", good_kernel()}),
                     "invalid size");
}

TEST_F(CliTest, ZeroVcpus) {
  expect_usage_error(run_ssi({"run", "--vcpus", "0", "--kernel", good_kernel()}),
                     "--vcpus must be at least 1");
}

TEST_F(CliTest, VcpusAboveLimit) {
  expect_usage_error(run_ssi({"run", "--vcpus", "65", "--kernel", good_kernel()}),
                     "above the limit of 64");
}

TEST_F(CliTest, VcpusNotANumber) {
  expect_usage_error(run_ssi({"run", "--vcpus", "many", "--kernel", good_kernel()}), "--vcpus");
}

TEST_F(CliTest, QemuStyleAliases) {
  expect_usage_error(run_ssi({"run", "-smp", "0", "-m", "64M", "-kernel", good_kernel()}),
                     "--vcpus must be at least 1");
}

TEST_F(CliTest, MissingKvmDeviceNamesTheDeviceAndWhyItIsNeeded) {
  auto o = run_ssi({"run", "--kernel", good_kernel()}, {"SSI_KVM_DEVICE=" + dir_ + "/kvm"});
  expect_usage_error(o, "");
  EXPECT_EQ(o.err, "ssi: error: " + dir_ +
                       "/kvm: No such file or directory (KVM is required to run guests)\n");
}

TEST_F(CliTest, NoDevKvmOnThisHost) {
  if (::access("/dev/kvm", F_OK) == 0) GTEST_SKIP() << "/dev/kvm exists on this host";
  auto o = run_ssi({"run", "--vcpus", "2", "--mem", "64M", "--kernel", good_kernel()});
  expect_usage_error(o, "");
  EXPECT_EQ(o.err,
            "ssi: error: /dev/kvm: No such file or directory (KVM is required to run guests)\n");
}

TEST_F(CliTest, KvmPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores file permissions";
  auto dev = write_file("kvm", {});
  ASSERT_EQ(::chmod(dev.c_str(), 0), 0);
  auto o = run_ssi({"run", "--kernel", good_kernel()}, {"SSI_KVM_DEVICE=" + dev});
  expect_usage_error(o, "Permission denied (KVM is required to run guests)");
}

TEST_F(CliTest, RunHelpListsOptions) {
  auto o = run_ssi({"run", "--help"});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.out.find("--vcpus"), std::string::npos);
  EXPECT_NE(o.out.find("--mem"), std::string::npos);
  EXPECT_NE(o.out.find("--kernel"), std::string::npos);
}

}  // namespace
