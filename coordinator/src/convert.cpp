#include "convert.hpp"

namespace ssi::coord {

void to_capnp(const NodeInfo& in, capnp_schema::NodeInfo::Builder out) {
  out.setId(in.id.value());
  out.setHost(in.host);
  out.setVersion(in.version);
  out.setTransportAddress(in.transport_address);
  out.setPid(in.pid);
  auto caps = out.initCapabilities(static_cast<unsigned>(in.capabilities.size()));
  for (unsigned i = 0; i < caps.size(); ++i) caps.set(i, in.capabilities[i]);
}

NodeInfo from_capnp(capnp_schema::NodeInfo::Reader in) {
  NodeInfo out;
  out.id = NodeId{in.getId()};
  out.host = in.getHost();
  out.version = in.getVersion();
  out.transport_address = in.getTransportAddress();
  out.pid = in.getPid();
  for (auto c : in.getCapabilities()) out.capabilities.emplace_back(c);
  return out;
}

void to_capnp(const MachineConfig& in, capnp_schema::MachineConfig::Builder out) {
  out.setNodes(in.nodes);
  out.setVcpus(in.vcpus);
  out.setMemBytes(in.mem_bytes);
  out.setTransport(in.transport);
  auto peers = out.initPeers(static_cast<unsigned>(in.peers.size()));
  for (unsigned i = 0; i < peers.size(); ++i) to_capnp(in.peers[i], peers[i]);
  auto vn = out.initVcpuNode(static_cast<unsigned>(in.vcpu_node.size()));
  for (unsigned i = 0; i < vn.size(); ++i) vn.set(i, in.vcpu_node[i]);
  out.setWorkload(in.workload);
  out.setWorkloadArg(in.workload_arg);
  out.setPhases(in.phases);
  out.setKernel(in.kernel);
  auto shares = out.initVcpuShares(static_cast<unsigned>(in.vcpu_shares.size()));
  for (unsigned i = 0; i < shares.size(); ++i) shares.set(i, in.vcpu_shares[i]);
  out.setVcpuQuotaPercent(in.vcpu_quota_percent);
  out.setNodeMemLimit(in.node_mem_limit);
  out.setKernelSha256(in.kernel_sha256);
  out.setInitrd(in.initrd);
  out.setAppend(in.append);
  out.setInitrdSha256(in.initrd_sha256);
  out.setTscEpochNs(in.tsc_epoch_ns);
  out.setRestoreDir(in.restore_dir);
  out.setCheckpointOn(in.checkpoint_on);
  out.setStandby(in.standby);
}

MachineConfig from_capnp(capnp_schema::MachineConfig::Reader in) {
  MachineConfig out;
  out.nodes = in.getNodes();
  out.vcpus = in.getVcpus();
  out.mem_bytes = in.getMemBytes();
  out.transport = in.getTransport();
  for (auto p : in.getPeers()) out.peers.push_back(from_capnp(p));
  for (auto n : in.getVcpuNode()) out.vcpu_node.push_back(n);
  out.workload = in.getWorkload();
  out.workload_arg = in.getWorkloadArg();
  out.phases = in.getPhases();
  out.kernel = in.getKernel();
  for (auto w : in.getVcpuShares()) out.vcpu_shares.push_back(w);
  out.vcpu_quota_percent = in.getVcpuQuotaPercent();
  out.node_mem_limit = in.getNodeMemLimit();
  out.kernel_sha256 = in.getKernelSha256();
  out.initrd = in.getInitrd();
  out.append = in.getAppend();
  out.initrd_sha256 = in.getInitrdSha256();
  out.tsc_epoch_ns = in.getTscEpochNs();
  out.restore_dir = in.getRestoreDir();
  out.checkpoint_on = in.getCheckpointOn();
  out.standby = in.getStandby();
  return out;
}

void to_capnp(const PhaseResult& in, capnp_schema::PhaseResult::Builder out) {
  out.setExitCode(in.exit_code);
  out.setMessage(in.message);
  out.setGuestExit(in.guest_exit);
  auto stats = out.initStats(static_cast<unsigned>(in.stats.size()));
  for (unsigned i = 0; i < stats.size(); ++i) {
    stats[i].setName(in.stats[i].first);
    stats[i].setValue(in.stats[i].second);
  }
}

PhaseResult from_capnp(capnp_schema::PhaseResult::Reader in) {
  PhaseResult out;
  out.exit_code = in.getExitCode();
  out.message = in.getMessage();
  out.guest_exit = in.getGuestExit();
  for (auto c : in.getStats()) out.stats.emplace_back(c.getName(), c.getValue());
  return out;
}

}  // namespace ssi::coord
