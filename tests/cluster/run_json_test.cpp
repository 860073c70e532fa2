// `--json FILE`: what a script reads after a run. The config as it ran
// (defaults filled in), version and git revision, the exit reason, and
// per-node and per-vCPU counters.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "ssi/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using ssi::testing::run_process;

nlohmann::json run_with_json(const std::vector<std::string>& args, const std::string& tag) {
  std::string path = ::testing::TempDir() + "ssi-run-json-" + tag + "-" + std::to_string(getpid()) + ".json";
  std::vector<std::string> a = args;
  a.insert(a.end(), {"--json", path});
  auto r = run_process(SSI_BINARY, a, {}, 120s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::ifstream in(path);
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  std::remove(path.c_str());
  return j;
}

TEST(RunJson, DemoRecordsTheDefaultsItRanWithVersionAndRevision) {
  auto j = run_with_json({"demo", "--nodes", "2", "--workload", "dsm-demo"}, "dsm");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["schema"], "ssi-run/1");
  EXPECT_FALSE(j["version"].get<std::string>().empty());
  EXPECT_FALSE(j["git"].get<std::string>().empty());
  EXPECT_EQ(j["exit_reason"], "finished");
  EXPECT_EQ(j["config"]["rounds"], 5000);       // dsm-demo's default, not 0
  EXPECT_EQ(j["config"]["mem_bytes"], 16 << 20);  // ditto
  EXPECT_EQ(j["rounds"], 5000);
  EXPECT_EQ(j["mem_bytes"], 16 << 20);
  ASSERT_EQ(j["node_reports"].size(), 2u);
  for (const auto& n : j["node_reports"]) {
    EXPECT_GT(n["pid"].get<int>(), 0);
    EXPECT_GT(n["stats"].value("counter_increments", 0ull), 0ull) << n.dump();
  }
}

// Without KVM (or a kernel) machine-demo runs the host-level DSM demo; the
// JSON records what ran, not what was asked for.
TEST(RunJson, MachineDemoWithoutKvmRecordsTheDsmDemoThatRan) {
  auto j = run_with_json({"demo", "--nodes", "2", "--workload", "machine-demo"}, "machine");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["config"]["workload"], "dsm-demo") << j.dump();
  ASSERT_EQ(j["node_reports"].size(), 2u);
  for (const auto& n : j["node_reports"])
    EXPECT_GT(n["stats"].value("counter_increments", 0ull), 0ull) << n.dump();
}

}  // namespace
