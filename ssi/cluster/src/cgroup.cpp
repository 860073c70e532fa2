#include "cgroup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

namespace ssi::cluster {
namespace {

// CFS period for the quota: 100 ms is the kernel's default and what
// systemd's CPUQuota= uses.
constexpr std::uint64_t kPeriodUs = 100'000;

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> write_text(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return make_error(Errc::kSystem, fmt::format("open {}: {}", path, std::strerror(errno)));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size()))
    return make_error(Errc::kSystem, fmt::format("write '{}' to {}: {}", value, path, std::strerror(err)));
  return ok();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// This process's cgroup path in the hierarchy of `controller` (v1), or in
// the unified hierarchy when `controller` is empty.
std::optional<std::string> own_path(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    auto f = split(line, ':');  // id:controllers:path
    if (f.size() < 3) continue;
    if (controller.empty() ? f[0] == "0" && f[1].empty() : has(split(f[1], ','), controller))
      return f[2];
  }
  return std::nullopt;
}

// The directory of this process's cgroup: where the hierarchy is mounted
// plus the path below the mount's root (/proc/self/mountinfo).
std::optional<std::string> own_dir(const std::string& controller) {
  auto path = own_path(controller);
  if (!path) return std::nullopt;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto pre = split(line.substr(0, dash), ' ');
    auto post = split(line.substr(dash + 3), ' ');  // fstype source options
    if (pre.size() < 5 || post.size() < 3) continue;
    bool match = controller.empty() ? post[0] == "cgroup2"
                                    : post[0] == "cgroup" && has(split(post[2], ','), controller);
    if (!match) continue;
    const std::string& root = pre[3];
    if (root != "/" && !path->starts_with(root)) continue;
    return pre[4] + (root == "/" ? *path : path->substr(root.size()));
  }
  return std::nullopt;
}

std::uint32_t weight_of(const ResourceLimits& l, std::uint32_t vcpu) {
  return vcpu < l.vcpu_shares.size() ? l.vcpu_shares[vcpu] : 1;
}

std::uint64_t number_in(const std::string& path) {
  auto t = read_text(path);
  return t ? std::strtoull(t->c_str(), nullptr, 10) : 0;
}

}  // namespace

ResourceLimits ResourceLimits::of(const coord::MachineConfig& c) {
  return {c.vcpu_shares, c.vcpu_quota_percent, c.node_mem_limit};
}

Result<std::unique_ptr<NodeCgroups>> NodeCgroups::create(std::uint32_t node,
                                                         const ResourceLimits& limits,
                                                         const std::vector<std::uint32_t>& vcpus) {
  auto g = std::unique_ptr<NodeCgroups>(new NodeCgroups());
  g->limits_ = limits;
  g->vcpus_ = vcpus;
  std::string name = fmt::format("ssi-node{}-{}", node, ::getpid());
  auto unified = own_dir("");
  auto controllers = unified ? read_text(*unified + "/cgroup.controllers") : std::nullopt;
  g->v2_ = controllers && has(split(*controllers, ' '), "cpu");
  auto r = g->v2_ ? g->setup_v2(name, vcpus) : g->setup_v1(name, vcpus);
  if (!r.ok())
    return make_error(Errc::kUnsupported,
                      fmt::format("cgroup {}: {}", g->version(), r.error().message));
  return g;
}

std::string NodeCgroups::vcpu_dir(std::uint32_t vcpu) const {
  return fmt::format("{}/vcpu{}", cpu_dir_, vcpu);
}

// v1: separate cpu and memory hierarchies; a single thread moves by
// writing its tid to `tasks`.
Result<void> NodeCgroups::setup_v1(const std::string& name, const std::vector<std::uint32_t>& vcpus) {
  auto cpu = own_dir("cpu");
  if (!cpu) return make_error(Errc::kUnsupported, "no cgroup hierarchy has the cpu controller");
  cpu_dir_ = *cpu + "/" + name;
  auto mk = [this](const std::string& dir) -> Result<void> {
    if (::mkdir(dir.c_str(), 0755) != 0)
      return make_error(Errc::kSystem, fmt::format("mkdir {}: {}", dir, std::strerror(errno)));
    made_.push_back(dir);
    return ok();
  };
  SSI_TRY(mk(cpu_dir_));
  for (std::uint32_t v : vcpus) {
    SSI_TRY(mk(vcpu_dir(v)));
    std::uint64_t shares = std::clamp<std::uint64_t>(1024ull * weight_of(limits_, v), 2, 262144);
    SSI_TRY(write_text(vcpu_dir(v) + "/cpu.shares", std::to_string(shares)));
    if (limits_.vcpu_quota_percent) {
      SSI_TRY(write_text(vcpu_dir(v) + "/cpu.cfs_period_us", std::to_string(kPeriodUs)));
      SSI_TRY(write_text(vcpu_dir(v) + "/cpu.cfs_quota_us",
                         std::to_string(kPeriodUs * limits_.vcpu_quota_percent / 100)));
    }
  }
  if (!limits_.node_mem_limit) return ok();
  auto mem = own_dir("memory");
  if (!mem) return make_error(Errc::kUnsupported, "no cgroup hierarchy has the memory controller");
  mem_parent_ = *mem;
  SSI_TRY(mk(*mem + "/" + name));
  mem_dir_ = *mem + "/" + name;
  SSI_TRY(write_text(mem_dir_ + "/memory.limit_in_bytes", std::to_string(limits_.node_mem_limit)));
  return write_text(mem_dir_ + "/cgroup.procs", std::to_string(::getpid()));
}

// v2: the process moves to a cgroup of its own (memory.max there); its
// vCPU threads go to threaded children with cpu.weight / cpu.max. The
// parent must let us enable controllers: a delegated cgroup (systemd
// Delegate=yes, a container's root) does.
Result<void> NodeCgroups::setup_v2(const std::string& name, const std::vector<std::uint32_t>& vcpus) {
  std::string parent = *own_dir("");
  std::string controllers = limits_.node_mem_limit ? "+cpu +memory" : "+cpu";
  SSI_TRY(write_text(parent + "/cgroup.subtree_control", controllers));
  cpu_dir_ = mem_dir_ = parent + "/" + name;
  mem_parent_ = parent;
  if (::mkdir(cpu_dir_.c_str(), 0755) != 0)
    return make_error(Errc::kSystem, fmt::format("mkdir {}: {}", cpu_dir_, std::strerror(errno)));
  made_.push_back(cpu_dir_);
  SSI_TRY(write_text(cpu_dir_ + "/cgroup.procs", std::to_string(::getpid())));
  if (limits_.node_mem_limit)
    SSI_TRY(write_text(cpu_dir_ + "/memory.max", std::to_string(limits_.node_mem_limit)));
  for (std::uint32_t v : vcpus) {
    if (::mkdir(vcpu_dir(v).c_str(), 0755) != 0)
      return make_error(Errc::kSystem, fmt::format("mkdir {}: {}", vcpu_dir(v), std::strerror(errno)));
    made_.push_back(vcpu_dir(v));
    SSI_TRY(write_text(vcpu_dir(v) + "/cgroup.type", "threaded"));
  }
  SSI_TRY(write_text(cpu_dir_ + "/cgroup.subtree_control", "+cpu"));
  for (std::uint32_t v : vcpus) {
    std::uint64_t weight = std::clamp<std::uint64_t>(100ull * weight_of(limits_, v), 1, 10000);
    SSI_TRY(write_text(vcpu_dir(v) + "/cpu.weight", std::to_string(weight)));
    if (limits_.vcpu_quota_percent)
      SSI_TRY(write_text(vcpu_dir(v) + "/cpu.max",
                         fmt::format("{} {}", kPeriodUs * limits_.vcpu_quota_percent / 100, kPeriodUs)));
  }
  if (!limits_.node_mem_limit) mem_dir_.clear();
  return ok();
}

NodeCgroups::~NodeCgroups() {
  // Back to where the process came from, so our directories are empty.
  if (!mem_parent_.empty() && (v2_ || !mem_dir_.empty()))
    (void)write_text(mem_parent_ + "/cgroup.procs", std::to_string(::getpid()));
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) ::rmdir(it->c_str());
}

Result<void> NodeCgroups::enter_vcpu(std::uint32_t vcpu) {
  if (std::find(vcpus_.begin(), vcpus_.end(), vcpu) == vcpus_.end())
    return make_error(Errc::kInvalidArgument, fmt::format("vCPU {} does not run on this node", vcpu));
  auto tid = std::to_string(::syscall(SYS_gettid));
  return write_text(vcpu_dir(vcpu) + (v2_ ? "/cgroup.threads" : "/tasks"), tid);
}

coord::Counters NodeCgroups::counters() const {
  coord::Counters out;
  for (std::uint32_t v : vcpus_) {
    std::string p = fmt::format("vcpu{}.", v);
    out.emplace_back(p + "cpu_weight", weight_of(limits_, v));
    if (limits_.vcpu_quota_percent) out.emplace_back(p + "cpu_quota_percent", limits_.vcpu_quota_percent);
  }
  if (!mem_dir_.empty()) {
    out.emplace_back("node_mem_limit_bytes", limits_.node_mem_limit);
    out.emplace_back("node_mem_usage_bytes",
                     number_in(mem_dir_ + (v2_ ? "/memory.current" : "/memory.usage_in_bytes")));
  }
  return out;
}

Result<std::unique_ptr<NodeCgroups>> cgroups_for(const coord::MachineConfig& config,
                                                 std::uint32_t node,
                                                 const std::vector<std::uint32_t>& vcpus) {
  ResourceLimits limits = ResourceLimits::of(config);
  if (!limits.any()) return std::unique_ptr<NodeCgroups>();
  auto g = NodeCgroups::create(node, limits, vcpus);
  if (!g.ok()) return make_error(g.error().code, fmt::format("resource limits: {}", g.error().message));
  return g;
}

void enter_vcpu_cgroup(NodeCgroups* cgroups, std::uint32_t vcpu) {
  if (!cgroups) return;
  // The thread runs on unlimited: worth a line, not worth stopping the guest.
  if (auto r = cgroups->enter_vcpu(vcpu); !r.ok())
    std::fprintf(stderr, "ssi: warning: vCPU %u: %s\n", vcpu, r.error().message.c_str());
}

}  // namespace ssi::cluster
