// The interconnect lab's host-level DSM workloads, end to end through
// `ssi demo --json`: each runs on real node processes, checks its own
// result (a wrong value fails the run), and reports the measured phase.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "ssi/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using ssi::testing::run_process;

std::string temp_json(const std::string& tag) {
  return ::testing::TempDir() + "ssi-lab-" + tag + "-" + std::to_string(getpid()) + ".json";
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

struct Case {
  const char* workload;
  const char* transport;
  int nodes;
  const char* rounds;
  const char* verified;  // what the check phase reports
};

class LabWorkloadTest : public ::testing::TestWithParam<Case> {};

TEST_P(LabWorkloadTest, RunsChecksAndReportsTheMeasuredPhase) {
  const Case& c = GetParam();
  std::string path = temp_json(c.workload);
  auto r = run_process(SSI_BINARY, {"demo", "--nodes", std::to_string(c.nodes), "--transport",
                                    c.transport, "--workload", c.workload, "--rounds", c.rounds,
                                    "--json", path}, {}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(c.verified), std::string::npos) << r.out;
  nlohmann::json j = read_json(path);
  std::remove(path.c_str());
  ASSERT_TRUE(j.is_object()) << "no valid JSON at " << path;
  EXPECT_EQ(j["schema"], "ssi-run/1");
  EXPECT_EQ(j["workload"], c.workload);
  EXPECT_EQ(j["exit_code"], 0);
  ASSERT_EQ(j["node_reports"].size(), static_cast<std::size_t>(c.nodes));
  for (const auto& n : j["node_reports"]) {
    const auto& s = n["stats"];
    EXPECT_GT(s.value("elapsed_ns", 0ull), 0ull) << n.dump();
    EXPECT_EQ(s.value("ops", 0ull) > 0, true) << n.dump();
    EXPECT_EQ(s.value("bad_messages", 1ull), 0ull) << n.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, LabWorkloadTest,
    ::testing::Values(
        Case{"lab-private", "shm", 2, "50", "private pages of each of 2 nodes"},
        Case{"lab-read-mostly", "tcp", 2, "30", "shared pages hold the last version"},
        Case{"lab-counter", "shm", 3, "50", "counter = 150 (exact)"},
        Case{"lab-false-sharing", "tcp", 3, "300", "3 slots in one page each hold 300"},
        Case{"lab-prodcons", "shm", 2, "40", "40 messages received and acknowledged"},
        Case{"lab-prodcons", "tcp", 1, "40", "40 messages received and acknowledged"}),
    [](const auto& info) {
      std::string n = std::string(info.param.workload).substr(4) + "_" + info.param.transport + "_" +
                      std::to_string(info.param.nodes);
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(LabWorkload, CounterTakesTurnsSoEveryIncrementMovesThePage) {
  std::string path = temp_json("turns");
  auto r = run_process(SSI_BINARY, {"demo", "--nodes", "2", "--transport", "shm", "--workload",
                                    "lab-counter", "--rounds", "40", "--json", path}, {}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json j = read_json(path);
  std::remove(path.c_str());
  ASSERT_TRUE(j.is_object());
  std::uint64_t faults = 0;
  for (const auto& n : j["node_reports"])
    faults += n["stats"].value("read_faults", 0ull) + n["stats"].value("write_faults", 0ull) +
              n["stats"].value("upgrade_faults", 0ull);
  // 80 increments alternating between 2 nodes: at least one fault each.
  EXPECT_GE(faults, 78u) << j.dump(1);
}

TEST(LabWorkload, UnwritableJsonPathIsRefusedBeforeTheRun) {
  auto r = run_process(SSI_BINARY, {"demo", "--nodes", "1", "--workload", "lab-private", "--rounds",
                                    "5", "--json", "/nonexistent-dir/x.json"}, {}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("cannot write /nonexistent-dir/x.json"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("joined"), std::string::npos) << "no node may start: " << r.err;
}

}  // namespace
