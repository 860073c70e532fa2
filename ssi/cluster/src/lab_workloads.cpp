// The interconnect lab's host-level DSM workloads (docs/benchmarking.md
// says what each one stresses). Every node runs one (prodcons: two)
// threads on the node's coherent memory; homes are equal contiguous chunks
// (chunk k on node k).
#include <algorithm>
#include <thread>
#include <vector>

#include "lab_workload.hpp"

namespace ssi::cluster {
namespace {

constexpr std::uint64_t kWordsPerLine = 8;  // one touch per 64-byte cache line
constexpr std::uint64_t kLinesPerPage = kPageSize / 64;

// lab-private: every node rewrites pages homed on itself. After the first
// touch (setup) no page ever moves: this should scale with the nodes (as
// far as there are CPUs).
class PrivatePages final : public LabWorkload {
 public:
  PrivatePages(NodeHost& h, const coord::MachineConfig& c) : LabWorkload(h, c) {}

 private:
  std::uint64_t count() const { return std::min<std::uint64_t>(256, dsm_.pages_of(me())); }
  std::uint64_t* line(std::uint32_t node, std::uint64_t p, std::uint64_t l) const {
    return dsm_.word(dsm_.first_page_of(node) + p, l * kWordsPerLine);
  }
  Result<void> setup() override {
    for (std::uint64_t p = 0; p < count(); ++p) store(line(me(), p, 0), 0);
    return ok();
  }
  Result<std::uint64_t> run() override {
    for (std::uint64_t pass = 0; pass < rounds_; ++pass)
      for (std::uint64_t p = 0; p < count(); ++p)
        for (std::uint64_t l = 0; l < kLinesPerPage; ++l) store(line(me(), p, l), pass ^ p);
    return rounds_ * count() * kLinesPerPage;
  }
  Result<std::string> check() override {
    for (std::uint32_t n = 0; n < nodes_; ++n)  // other nodes' pages: remote reads
      for (std::uint64_t p = 0; p < count(); ++p)
        if (std::uint64_t v = load(line(n, p, 0)); v != ((rounds_ - 1) ^ p))
          return make_error(Errc::kInternal, fmt::format("private page {} of node {} reads {}", p, n, v));
    return fmt::format("{} private pages of each of {} nodes hold their last pass", count(), nodes_);
  }
};

// lab-read-mostly: every node reads a shared block homed on node 0 while
// node 0 rewrites one page of it every kWriteEvery passes, invalidating
// all readers' copies. Read faults dominate: their latency is the metric
// that follows the link delay. Versions read must never go backwards.
class ReadMostly final : public LabWorkload {
 public:
  ReadMostly(NodeHost& h, const coord::MachineConfig& c) : LabWorkload(h, c) {}

 private:
  static constexpr std::uint64_t kWriteEvery = 10;
  std::uint64_t count() const { return std::min<std::uint64_t>(64, dsm_.pages_of(0)); }
  std::uint64_t* line(std::uint64_t p, std::uint64_t l) const {
    return dsm_.word(dsm_.first_page_of(0) + p, l * kWordsPerLine);
  }
  void write_page(std::uint64_t p, std::uint64_t version) {
    for (std::uint64_t l = 0; l < kLinesPerPage; ++l) store(line(p, l), version);
  }
  Result<void> setup() override {
    if (me() == 0)
      for (std::uint64_t p = 0; p < count(); ++p) write_page(p, 0);
    return ok();
  }
  Result<std::uint64_t> run() override {
    std::vector<std::uint64_t> seen(count() * kLinesPerPage, 0);  // per line: writes are not atomic per page
    for (std::uint64_t pass = 0; pass < rounds_; ++pass) {
      if (me() == 0 && pass % kWriteEvery == 0) write_page((pass / kWriteEvery) % count(), pass + 1);
      for (std::uint64_t p = 0; p < count(); ++p)
        for (std::uint64_t l = 0; l < kLinesPerPage; ++l) {
          std::uint64_t v = load(line(p, l)), &last = seen[p * kLinesPerPage + l];
          if (v < last)
            return make_error(Errc::kInternal, fmt::format("page {} line {} went back from version {} to {}",
                                                           p, l, last, v));
          last = v;
        }
    }
    return rounds_ * count() * kLinesPerPage;
  }
  Result<std::string> check() override {
    std::vector<std::uint64_t> last(count(), 0);
    for (std::uint64_t pass = 0; pass < rounds_; pass += kWriteEvery)
      last[(pass / kWriteEvery) % count()] = pass + 1;
    for (std::uint64_t p = 0; p < count(); ++p)
      for (std::uint64_t l = 0; l < kLinesPerPage; ++l)
        if (load(line(p, l)) != last[p])
          return make_error(Errc::kInternal, fmt::format("shared page {} line {} reads {}, not {}", p,
                                                         l, load(line(p, l)), last[p]));
    return fmt::format("{} shared pages hold the last version written", count());
  }
};

// lab-counter: one 8-byte counter homed on node 0 that the nodes take
// turns to increment (node k when counter % nodes == k): every increment
// is a page migration to the next node, the worst case of a contended
// lock or counter. Free-running increments would mostly stay local: a
// node does thousands of them in the time one page request takes.
class Counter final : public LabWorkload {
 public:
  Counter(NodeHost& h, const coord::MachineConfig& c) : LabWorkload(h, c) {}

 private:
  std::atomic<std::uint64_t>* counter() const { return dsm_.atomic_word(dsm_.first_page_of(0)); }
  Result<std::uint64_t> run() override {
    for (std::uint64_t i = 0; i < rounds_; ++i) {
      SSI_TRY(wait_until([&] { return counter()->load() % nodes_ == me(); }, "this node's turn"));
      counter()->fetch_add(1);
    }
    return rounds_;
  }
  Result<std::string> check() override {
    std::uint64_t expected = rounds_ * nodes_, seen = counter()->load();
    if (seen != expected)
      return make_error(Errc::kInternal, fmt::format("counter is {}, expected {}", seen, expected));
    return fmt::format("counter = {} (exact)", seen);
  }
};

// lab-false-sharing: node k writes only its own cache line, but all lines
// share one page: page-granular coherence moves the page on every write
// that follows another node's. A lost write shows as a slot out of step.
class FalseSharing final : public LabWorkload {
 public:
  FalseSharing(NodeHost& h, const coord::MachineConfig& c) : LabWorkload(h, c) {}

 private:
  std::uint64_t* slot(std::uint32_t node) const {
    return dsm_.word(dsm_.first_page_of(0) + 1, node * kWordsPerLine);
  }
  Result<std::uint64_t> run() override {
    for (std::uint64_t i = 1; i <= rounds_; ++i) {
      if (std::uint64_t v = load(slot(me())); v != i - 1)
        return make_error(Errc::kInternal, fmt::format("own slot reads {} before write {}", v, i));
      store(slot(me()), i);
    }
    return rounds_;
  }
  Result<std::string> check() override {
    for (std::uint32_t n = 0; n < nodes_; ++n)
      if (load(slot(n)) != rounds_)
        return make_error(Errc::kInternal, fmt::format("slot of node {} reads {}", n, load(slot(n))));
    return fmt::format("{} slots in one page each hold {}", nodes_, rounds_);
  }
};

// lab-prodcons: node k sends messages (a 256-byte payload, then a sequence
// number) through a mailbox page homed at node k+1, which acknowledges
// each one: a ring of producer/consumer pairs, one page round trip per
// message. With one node both threads share it.
class ProdCons final : public LabWorkload {
 public:
  ProdCons(NodeHost& h, const coord::MachineConfig& c) : LabWorkload(h, c) {}

 private:
  static constexpr std::uint64_t kPayloadWords = 32;
  std::uint64_t* box(std::uint32_t node, std::uint64_t w) const {
    return dsm_.word(dsm_.first_page_of(node) + 2, w);
  }
  static std::uint64_t payload(std::uint64_t msg, std::uint64_t w) { return msg * 1000 + w; }

  Result<void> produce() {
    std::uint32_t to = (me() + 1) % nodes_;
    for (std::uint64_t i = 1; i <= rounds_; ++i) {
      SSI_TRY(wait_until([&] { return load(box(to, 8), std::memory_order_acquire) == i - 1; },
                         "the consumer's ack"));
      for (std::uint64_t w = 0; w < kPayloadWords; ++w) store(box(to, 16 + w), payload(i, w));
      store(box(to, 0), i, std::memory_order_release);
    }
    return ok();
  }
  Result<void> consume() {
    for (std::uint64_t i = 1; i <= rounds_; ++i) {
      SSI_TRY(wait_until([&] { return load(box(me(), 0), std::memory_order_acquire) == i; },
                         "the producer's message"));
      for (std::uint64_t w = 0; w < kPayloadWords; ++w)
        if (std::uint64_t v = load(box(me(), 16 + w)); v != payload(i, w))
          return make_error(Errc::kInternal, fmt::format("message {} word {} reads {}", i, w, v));
      store(box(me(), 8), i, std::memory_order_release);
    }
    return ok();
  }
  Result<std::uint64_t> run() override {
    Result<void> produced = ok();
    std::thread producer([&] { produced = produce(); });
    Result<void> consumed = consume();
    producer.join();
    SSI_TRY(produced);
    SSI_TRY(consumed);
    return rounds_;
  }
  Result<std::string> check() override {
    if (load(box(me(), 0)) != rounds_ || load(box(me(), 8)) != rounds_)
      return make_error(Errc::kInternal, "mailbox sequence/ack do not match the message count");
    return fmt::format("{} messages received and acknowledged", rounds_);
  }
};

template <typename W>
Result<std::unique_ptr<Workload>> make(NodeHost& host, const coord::MachineConfig& config) {
  auto w = std::make_unique<W>(host, config);
  SSI_TRY(w->start());
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace

Result<std::unique_ptr<Workload>> make_lab_workload(NodeHost& host, const coord::MachineConfig& c) {
  if (c.nodes > 16) return make_error(Errc::kInvalidArgument, "lab workloads support up to 16 nodes");
  if (c.workload == "lab-private") return make<PrivatePages>(host, c);
  if (c.workload == "lab-read-mostly") return make<ReadMostly>(host, c);
  if (c.workload == "lab-counter") return make<Counter>(host, c);
  if (c.workload == "lab-false-sharing") return make<FalseSharing>(host, c);
  if (c.workload == "lab-prodcons") return make<ProdCons>(host, c);
  return make_error(Errc::kNotFound, fmt::format("unknown lab workload '{}'", c.workload));
}

}  // namespace ssi::cluster
