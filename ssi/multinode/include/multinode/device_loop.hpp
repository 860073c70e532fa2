// Node 0's device thread: the loop that serves what other nodes ask of the
// board (forwarded port I/O and MMIO, remote level-triggered EOIs), off the
// reactor thread. A device may block here (the console's write(2) to a
// stalled terminal) while the reactor goes on serving pages and IPIs to
// every node; only the accesses queued behind it wait. Node 0's own vCPUs
// call the board on their own threads. Tasks arrive through a Boost.Fiber
// channel (post() from a reactor fiber or any thread) and run in order.
#pragma once

#include <functional>
#include <thread>

#include <boost/fiber/buffered_channel.hpp>

namespace ssi::multinode {

class DeviceLoop {
 public:
  using Task = std::function<void()>;
  DeviceLoop();
  ~DeviceLoop();  // closes the channel, runs what was queued, joins
  DeviceLoop(const DeviceLoop&) = delete;
  DeviceLoop& operator=(const DeviceLoop&) = delete;

  // Thread-safe; a fiber poster yields while the queue is full. Dropped
  // once the loop is closing.
  void post(Task task);

 private:
  boost::fibers::buffered_channel<Task> queue_{64};
  std::thread thread_;
};

}  // namespace ssi::multinode
