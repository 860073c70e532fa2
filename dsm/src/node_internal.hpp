// Private pieces shared by the node agent's source files.
#pragma once

#include <boost/fiber/future.hpp>
#include <chrono>
#include <memory>

#include "base/log.hpp"
#include "dsm/node.hpp"

namespace ssi::dsm {

using SteadyTime = std::chrono::steady_clock::time_point;

// One outstanding request of this node: its start time for the latency
// histogram and the promise its fault fiber waits on.
// A write's grant that arrived before the InvAcks it waits for keeps its
// page here until the last one.
struct Node::Inflight {
  SteadyTime start;
  FaultAction action;
  boost::fibers::promise<void> done;
  rdma::Payload grant_data;
  int path = kPathReadHome;
  int delays = 0;  // one-way network delays on the critical path so far
  bool migratory = false;  // the grant is migratory: keep a snapshot of the page
  bool hot = false;        // the grant is of a hot page: hold it for the faulting thread
  bool clean = false;      // the old owner gave it up unchanged: tell the home
};

inline std::shared_ptr<spdlog::logger> dsm_log() {
  static auto log = ssi::log::get("dsm");
  return log;
}

}  // namespace ssi::dsm
