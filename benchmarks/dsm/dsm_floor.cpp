// Prints this host's DSM fault floor as one JSON object: what a fault
// costs with no network at all (local userfaultfd MISSING fault resolved
// by UFFDIO_COPY), what a write-protect downgrade and a drop of one page
// add, and a 4 KiB rpc over in-process loopback. The interconnect lab's
// latency model (lab/ssi_lab/model.py) starts from these numbers.
#include <sys/utsname.h>

#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_common.hpp"

int main(int argc, char** argv) {
  using namespace ssi::dsm::bench;
  int samples = argc > 1 ? std::atoi(argv[1]) : 300;
  if (samples < 10 || samples > 100000) {
    std::fprintf(stderr, "usage: dsm_floor [SAMPLES 10..100000]\n");
    return 2;
  }
  auto cluster = make_bench_cluster("loopback", 2, 16);
  if (!cluster.ok()) {
    std::fprintf(stderr, "dsm_floor: error: %s\n", cluster.error().to_string().c_str());
    return 1;
  }
  Floor f;
  on_host_of(0, [&] { f = measure_floor(**cluster, samples); });
  if (f.uffd_us <= 0) {
    std::fprintf(stderr, "dsm_floor: error: the uffd floor could not be measured\n");
    return 1;
  }
  utsname u{};
  uname(&u);
  nlohmann::ordered_json j;
  j["uffd_fault_us"] = f.uffd_us;
  j["write_protect_us"] = f.wp_us;
  j["drop_us"] = f.drop_us;
  j["loopback_rpc_4k_us"] = f.rpc_us;
  j["samples"] = samples;
  j["statistic"] = "median";
  j["kernel"] = u.release;
  j["online_cpus"] = std::thread::hardware_concurrency();
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}
