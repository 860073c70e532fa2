// Live metrics (`--metrics`, `ssi stats`) and resource shares
// (`--vcpu-shares`, cgroups), through the real binary where it matters.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/metrics.hpp"
#include "ssi/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using ssi::testing::run_process;
using Json = nlohmann::json;

std::string temp_path(const std::string& tag) {
  return ::testing::TempDir() + "ssi-metrics-" + tag + "-" + std::to_string(getpid());
}

std::uint64_t total_run_ns(const Json& reply) {
  std::uint64_t sum = 0;
  for (const auto& n : reply["return"]["nodes"])
    for (const auto& [name, value] : n["counters"].items())
      if (name.ends_with(".run_ns")) sum += value.get<std::uint64_t>();
  return sum;
}

// Polls `ssi stats --json` until the reply has every node's vCPU counters.
Json query_until_running(const std::string& sock, std::size_t nodes) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = run_process(SSI_BINARY, {"stats", sock, "--json"}, {}, 10s);
    if (r.exit_code == 0) {
      Json j = Json::parse(r.out, nullptr, false);
      if (!j.is_discarded() && j["return"]["nodes"].size() == nodes && total_run_ns(j) > 0) return j;
    }
    std::this_thread::sleep_for(100ms);
  }
  return Json();
}

TEST(LiveMetrics, StatsSeesVcpuRunTimeGrowWhileTheMachineRuns) {
  std::string sock = temp_path("live") + ".sock";
  ssi::testing::ProcessOutcome demo;
  std::thread machine([&] {
    demo = run_process(SSI_BINARY, {"demo", "--nodes", "2", "--workload", "vcpu-spin", "--rounds",
                                    "4000", "--metrics", sock}, {}, 60s);
  });
  Json first = query_until_running(sock, 2);
  std::this_thread::sleep_for(1200ms);
  auto second_run = run_process(SSI_BINARY, {"stats", sock, "--json"}, {}, 10s);
  auto table = run_process(SSI_BINARY, {"stats", sock}, {}, 10s);
  machine.join();
  ASSERT_FALSE(first.is_null()) << "no live counters within 20 s: " << demo.err;
  Json second = Json::parse(second_run.out, nullptr, false);
  ASSERT_FALSE(second.is_discarded()) << second_run.out << second_run.err;
  EXPECT_EQ(demo.exit_code, 0) << demo.err;
  EXPECT_GT(second["return"]["samples"].get<int>(), first["return"]["samples"].get<int>());
  EXPECT_GT(total_run_ns(second), total_run_ns(first)) << first.dump() << "\n" << second.dump();
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("run time"), std::string::npos) << table.out;  // the per-vCPU table
}

TEST(LiveMetrics, DsmHistogramsAndPerVcpuCountersInPrometheusText) {
  ssi::cluster::MetricsSnapshot s;
  ssi::coord::NodeReport n;
  n.info.id = ssi::NodeId{1};
  n.last.stats = {{"read_faults", 3},          {"read_fault_latency_bucket.14", 2},
                  {"read_fault_latency_bucket.16", 1}, {"read_fault_latency_sum_ns", 90000},
                  {"vcpu3.run_ns", 1234},      {"vcpu3.exits_io", 7}};
  s.nodes.push_back(n);
  std::string text = ssi::cluster::prometheus_text(s);
  EXPECT_NE(text.find("ssi_read_faults{node=\"1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ssi_vcpu_run_ns{node=\"1\",vcpu=\"3\"} 1234\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ssi_vcpu_exits_io{node=\"1\",vcpu=\"3\"} 7\n"), std::string::npos) << text;
  // Cumulative buckets with upper bounds 2^(b+1) ns, in seconds.
  EXPECT_NE(text.find("ssi_dsm_read_fault_latency_seconds_bucket{node=\"1\",le=\"3.2768e-05\"} 2\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("ssi_dsm_read_fault_latency_seconds_bucket{node=\"1\",le=\"+Inf\"} 3\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("ssi_dsm_read_fault_latency_seconds_count{node=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ssi_dsm_read_fault_latency_seconds histogram"), std::string::npos);
}

std::string ask(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    for (ssize_t got; (got = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return reply;
}

TEST(LiveMetrics, OneTcpEndpointAnswersHttpGetAndQmpStyleJson) {
  auto server = ssi::cluster::MetricsServer::start("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  ssi::coord::NodeReport n;
  n.info.id = ssi::NodeId{0};
  n.last.stats = {{"write_faults", 5}};
  (*server)->publish({n});
  auto port = static_cast<std::uint16_t>(
      std::stoi((*server)->address().substr((*server)->address().rfind(':') + 1)));
  std::string http = ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(http.starts_with("HTTP/1.0 200 OK")) << http;
  EXPECT_NE(http.find("ssi_write_faults{node=\"0\"} 5"), std::string::npos) << http;
  auto parsed = ssi::cluster::parse_query_stats(ask(port, "{\"execute\":\"query-stats\"}\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  ASSERT_EQ(parsed->nodes.size(), 1u);
  EXPECT_EQ(parsed->nodes[0].last.stats, (ssi::coord::Counters{{"write_faults", 5}}));
  EXPECT_NE(ask(port, "{\"execute\":\"quit\"}\n").find("CommandNotFound"), std::string::npos);
  // The command is the "execute" member, parsed as JSON: a name elsewhere in
  // the line does not select it, and a line that is not JSON says so.
  auto elsewhere = Json::parse(ask(port, "{\"execute\":\"quit\",\"note\":\"query-stats\"}\n"), nullptr, false);
  ASSERT_TRUE(elsewhere.is_object());
  EXPECT_EQ(elsewhere["error"]["class"], "CommandNotFound");
  auto garbage = Json::parse(ask(port, "query-stats please\n"), nullptr, false);
  ASSERT_TRUE(garbage.is_object());
  EXPECT_NE(garbage["error"]["desc"].get<std::string>().find("not a JSON object"), std::string::npos);
}

TEST(LiveMetrics, StatsWithoutAMachineIsOneLineAndExit2) {
  auto r = run_process(SSI_BINARY, {"stats", temp_path("none") + ".sock"}, {}, 10s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Two vCPU threads on one CPU (the node pinned with taskset), weights 1:3
// through the same cgroup path vCPU threads of a guest take.
TEST(ResourceShares, VcpuThreadsWithShares1To3GetCpuTimeCloseTo1To3) {
  std::string json = temp_path("shares") + ".json";
  auto r = run_process("/usr/bin/taskset",
                       {"-c", "0", SSI_BINARY, "demo", "--nodes", "1", "--workload", "vcpu-spin",
                        "--vcpus", "2", "--vcpu-shares", "1:3", "--rounds", "3000", "--json", json},
                       {}, 60s);
  if (r.exit_code != 0 && r.err.find("resource limits:") != std::string::npos)
    GTEST_SKIP() << "no writable cgroup hierarchy: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(json);
  Json j = Json::parse(in, nullptr, false);
  std::remove(json.c_str());
  ASSERT_FALSE(j.is_discarded());
  double ns[2] = {0, 0};
  for (const auto& v : j["node_reports"][0]["vcpus"]) {
    int id = v["id"].get<int>();
    ASSERT_TRUE(id == 0 || id == 1) << v.dump();
    ns[id] = v["run_ns"].get<double>();
    EXPECT_EQ(v["cpu_weight"].get<int>(), id == 0 ? 1 : 3) << v.dump();
  }
  ASSERT_GT(ns[0], 0);
  double ratio = ns[1] / ns[0];
  std::printf("vCPU CPU time %.0f ms : %.0f ms = 1 : %.2f\n", ns[0] / 1e6, ns[1] / 1e6, ratio);
  EXPECT_NEAR(ratio, 3.0, 0.6) << r.err;  // within 20 %
}

TEST(ResourceShares, BadLimitsAreRefusedAtParseTime) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"demo", "--vcpu-shares", "1:0"}, {"demo", "--vcpu-shares", "a:b"},
           {"demo", "--vcpu-quota", "250"}, {"demo", "--node-mem-limit", "lots"},
           {"demo", "--metrics", "/nonexistent-dir/x.sock"}, {"demo", "--metrics", "127.0.0.1:70000"}}) {
    auto r = run_process(SSI_BINARY, args, {}, 10s);
    EXPECT_EQ(r.exit_code, 2) << args[2];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
