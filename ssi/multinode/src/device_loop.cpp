#include "multinode/device_loop.hpp"

#include <pthread.h>

namespace ssi::multinode {

DeviceLoop::DeviceLoop()
    : thread_([this] {
        ::pthread_setname_np(::pthread_self(), "ssi-devices");
        Task t;
        while (queue_.pop(t) == boost::fibers::channel_op_status::success) t();
      }) {}

DeviceLoop::~DeviceLoop() {
  queue_.close();
  thread_.join();
}

void DeviceLoop::post(Task task) { (void)queue_.push(std::move(task)); }

}  // namespace ssi::multinode
