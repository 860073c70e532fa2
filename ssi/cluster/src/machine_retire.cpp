#include "machine_retire.hpp"

#include <atomic>
#include <chrono>

#include <fmt/format.h>

namespace ssi::cluster {
namespace {

constexpr int kPrecopyThreads = 4;  // faults overlap, as in a checkpoint's fetch
constexpr auto kHandoverLimit = std::chrono::seconds(240);

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

struct NodeRetire::Job {
  std::mutex mu;
  bool done = false;
  std::optional<Result<std::string>> outcome;  // under mu
};

NodeRetire::~NodeRetire() {
  if (thread_.joinable()) thread_.join();
}

Result<void> NodeRetire::start(std::function<Result<std::string>()> work) {
  if (job_) {
    std::lock_guard lock(job_->mu);
    if (!job_->done) return make_error(Errc::kInvalidArgument, "a retire step runs already");
  }
  if (thread_.joinable()) thread_.join();
  auto job = std::make_shared<Job>();
  job_ = job;
  thread_ = std::thread([job, work = std::move(work)] {
    auto r = work();
    std::lock_guard lock(job->mu);
    job->outcome = std::move(r);
    job->done = true;
  });
  return ok();
}

// Read one byte of every page homed on `from`: each fault makes this node a
// sharer (a read grant), so the handover need not send those pages again
// unless the guest writes them meanwhile (which invalidates the copy).
Result<void> NodeRetire::precopy(NodeId from, bool pages_too) {
  std::vector<dsm::HomeMap::Range> ranges;
  SSI_TRY(host_.call([&]() -> Result<void> {
    for (const auto& r : dsm_.homes().ranges())
      if (r.home == from) ranges.push_back(r);
    return ok();
  }));
  return start([this, ranges, pages_too]() -> Result<std::string> {
    fabric_.settle(std::chrono::seconds(2));  // IPIs held on the node that retires are passed on
    if (!pages_too) return std::string();
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t before = dsm_.stats().bytes_received.load();
    std::atomic<std::uint64_t> pages{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kPrecopyThreads; ++t)
      threads.emplace_back([&, t] {
        for (const auto& r : ranges)
          for (std::uint64_t p = r.first.value() + t; p < r.end.value(); p += kPrecopyThreads) {
            (void)*reinterpret_cast<volatile const std::uint8_t*>(dsm_.base() + p * kPageSize);
            pages.fetch_add(1, std::memory_order_relaxed);
          }
      });
    for (auto& th : threads) th.join();
    if (auto f = dsm_.failure()) return *f;
    return fmt::format("\"precopy_pages\":{},\"precopy_bytes\":{},\"precopy_ms\":{:.3f}", pages.load(),
                       dsm_.stats().bytes_received.load() - before, ms_since(t0));
  });
}

Result<void> NodeRetire::hand_over(NodeId to) {
  return start([this, to]() -> Result<std::string> {
    auto st = std::make_shared<std::optional<Result<dsm::HandoverStats>>>();
    auto r = host_.call([this, to, st]() -> Result<void> {
      *st = dsm_.hand_over(to, std::chrono::duration_cast<std::chrono::milliseconds>(kHandoverLimit));
      return ok();
    }, kHandoverLimit + std::chrono::seconds(5));
    if (!r.ok()) return std::move(r).error();
    if (!st->has_value()) return make_error(Errc::kTimeout, "the handover did not end");
    if (!(*st)->ok()) return std::move(**st).error();
    const dsm::HandoverStats s = ***st;
    fabric_.leave();  // its exit stops only this node from now on
    retired_.store(true);
    return fmt::format("\"entries\":{},\"entry_pages\":{},\"kept\":{},\"written_back\":{},\"left\":{},"
                       "\"handover_bytes\":{},\"pages_rehomed\":{},\"handover_ms\":{:.3f}",
                       s.entries, s.entry_pages, s.kept, s.written_back, s.left, s.bytes, s.pages_rehomed,
                       s.took.count() / 1000.0);
  });
}

Result<coord::CheckpointProgress> NodeRetire::status() {
  if (!job_) return make_error(Errc::kInvalidArgument, "no retire step ordered");
  std::lock_guard lock(job_->mu);
  if (!job_->done) return coord::CheckpointProgress{false, ""};
  if (!job_->outcome->ok()) return job_->outcome->error();
  return coord::CheckpointProgress{true, **job_->outcome};
}

void NodeRetire::node_retired(NodeId node) { fabric_.node_retired(node); }

bool NodeRetire::retired() const { return retired_.load(); }

}  // namespace ssi::cluster
