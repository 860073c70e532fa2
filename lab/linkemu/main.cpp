// ssi-linkemu: an Ethernet switch in userspace whose ports are existing
// network interfaces (the switch-side ends of the lab's veth pairs, in the
// switch's network namespace), each port's egress an emulated link
// (one-way delay, jitter, rate). Used where the kernel has no sch_netem
// (this machine kind), and for links emulated identically on any kernel.
//
// Ports are AF_PACKET sockets, not TAP devices: with a TAP the sender's
// TCP stack only sees its packet transmitted once this process read it,
// which stalled request/response traffic by milliseconds; a veth
// completes the transmit at once, as a NIC would.
//
// Prints "ready" once every port is open; runs until SIGINT/SIGTERM; then
// prints one JSON line of per-port counters.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "link_queue.hpp"
#include "switch_table.hpp"

namespace ssi::lab {
namespace {

struct Port {
  std::string name;
  UniqueFd fd;
  LinkQueue link;
  std::uint64_t rx_frames = 0, tx_frames = 0, tx_bytes = 0, write_drops = 0;
};

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A raw packet socket on interface `name`: every frame the interface
// receives, none of those we send (PACKET_IGNORE_OUTGOING).
Result<UniqueFd> open_port(const std::string& name) {
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) return Error::from_errno(fmt::format("no interface '{}'", name));
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (!fd) return Error::from_errno("socket(AF_PACKET)");
  int one = 1;
  if (setsockopt(fd.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0)
    return Error::from_errno("PACKET_IGNORE_OUTGOING");
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(index);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
    return Error::from_errno("bind to " + name);
  packet_mreq mr{};
  mr.mr_ifindex = static_cast<int>(index);
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
    return Error::from_errno("promiscuous mode on " + name);
  return fd;
}

// "NAME[:DELAY_US[:RATE_GBIT[:JITTER_US]]]", defaults from `base`.
Result<std::pair<std::string, LinkParams>> parse_port(const std::string& spec, LinkParams base) {
  std::vector<std::string> f;
  for (std::size_t at = 0;;) {
    std::size_t c = spec.find(':', at);
    f.push_back(spec.substr(at, c == std::string::npos ? std::string::npos : c - at));
    if (c == std::string::npos) break;
    at = c + 1;
  }
  try {
    if (f.size() > 1 && !f[1].empty()) base.delay_ns = static_cast<std::uint64_t>(std::stod(f[1]) * 1000);
    if (f.size() > 2 && !f[2].empty()) base.rate_gbit = std::stod(f[2]);
    if (f.size() > 3 && !f[3].empty()) base.jitter_ns = static_cast<std::uint64_t>(std::stod(f[3]) * 1000);
  } catch (const std::exception&) {
    return make_error(Errc::kInvalidArgument, fmt::format("bad --port '{}'", spec));
  }
  if (f.size() > 4 || base.rate_gbit < 0)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("bad --port '{}' (NAME[:DELAY_US[:RATE_GBIT[:JITTER_US]]])", spec));
  return std::pair{f[0], base};
}

Result<void> add_watch(int ep, int fd, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return Error::from_errno("epoll_ctl");
  return ok();
}

class Switch {
 public:
  Result<void> open(const std::vector<std::string>& specs, LinkParams base, std::uint64_t seed) {
    for (std::size_t i = 0; i < specs.size(); ++i) {
      SSI_ASSIGN_OR_RETURN(auto spec, parse_port(specs[i], base));
      SSI_ASSIGN_OR_RETURN(UniqueFd fd, open_port(spec.first));
      ports_.push_back(Port{spec.first, std::move(fd), LinkQueue(spec.second, seed + i)});
    }
    ep_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    timer_ = UniqueFd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signals_ = UniqueFd(signalfd(-1, &set, SFD_CLOEXEC));
    if (!ep_ || !timer_ || !signals_) return Error::from_errno("epoll/timerfd/signalfd");
    for (std::size_t i = 0; i < ports_.size(); ++i) SSI_TRY(add_watch(ep_.get(), ports_[i].fd.get(), i));
    SSI_TRY(add_watch(ep_.get(), timer_.get(), kTimer));
    return add_watch(ep_.get(), signals_.get(), kSignal);
  }

  Result<void> run() {
    table_ = std::make_unique<SwitchTable>(ports_.size());
    for (bool stop = false; !stop;) {
      epoll_event ev[16];
      int n = epoll_wait(ep_.get(), ev, 16, -1);
      if (n < 0 && errno != EINTR) return Error::from_errno("epoll_wait");
      for (int i = 0; i < n; ++i) {
        if (ev[i].data.u64 == kSignal) stop = true;
        else if (ev[i].data.u64 == kTimer) drain_timer();
        else receive(ev[i].data.u64);
      }
      transmit_due();
      SSI_TRY(arm_timer());
    }
    return ok();
  }

  std::string counters_json() const {
    std::string s = "{\"ports\":[";
    for (std::size_t i = 0; i < ports_.size(); ++i) {
      const Port& p = ports_[i];
      s += fmt::format("{}{{\"name\":\"{}\",\"rx_frames\":{},\"tx_frames\":{},\"tx_bytes\":{},"
                       "\"queue_drops\":{},\"write_drops\":{}}}",
                       i ? "," : "", p.name, p.rx_frames, p.tx_frames, p.tx_bytes, p.link.drops(),
                       p.write_drops);
    }
    return s + "]}";
  }

 private:
  static constexpr std::uint64_t kTimer = 1ull << 32, kSignal = kTimer + 1;

  void drain_timer() {
    std::uint64_t expirations;
    (void)!::read(timer_.get(), &expirations, sizeof expirations);
  }

  void receive(std::size_t in) {
    for (int budget = 0; budget < 256; ++budget) {  // bounded: other ports get a turn
      std::vector<std::byte> buf(65536);
      ssize_t n = ::read(ports_[in].fd.get(), buf.data(), buf.size());
      if (n <= 0) return;  // EAGAIN, or the TAP went away
      buf.resize(static_cast<std::size_t>(n));
      ++ports_[in].rx_frames;
      std::uint64_t now = now_ns();
      auto outs = table_->route(in, buf);
      for (std::size_t k = 0; k < outs.size(); ++k)
        ports_[outs[k]].link.push(now, k + 1 == outs.size() ? std::move(buf) : buf);
    }
  }

  void transmit_due() {
    std::uint64_t now = now_ns();
    for (Port& p : ports_)
      while (p.link.due(now)) {
        LinkQueue::Frame f = p.link.pop();
        if (trace_ && now - f.depart_ns > 200000 && traced_++ < 50)
          std::fprintf(stderr, "tx %s due %llu sent %llu late %lld ns\n", p.name.c_str(),
                       static_cast<unsigned long long>(f.depart_ns),
                       static_cast<unsigned long long>(now),
                       static_cast<long long>(now - f.depart_ns));
        if (::write(p.fd.get(), f.bytes.data(), f.bytes.size()) == static_cast<ssize_t>(f.bytes.size())) {
          ++p.tx_frames;
          p.tx_bytes += f.bytes.size();
        } else {
          ++p.write_drops;  // the node's stack did not take it: like a full NIC ring
        }
      }
  }

  Result<void> arm_timer() {
    std::uint64_t next = UINT64_MAX;
    for (const Port& p : ports_) next = std::min(next, p.link.next_departure());
    itimerspec its{};
    if (next != UINT64_MAX) {
      next = std::max<std::uint64_t>(next, 1);
      its.it_value.tv_sec = static_cast<time_t>(next / 1000000000ull);
      its.it_value.tv_nsec = static_cast<long>(next % 1000000000ull);
    }
    if (timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr) != 0)
      return Error::from_errno("timerfd_settime");
    return ok();
  }

  // SSI_LINKEMU_TRACE=1: up to 50 frames that left more than 200 us after
  // they were due, on stderr: shows when the emulated wire itself stalls
  // (it does when every CPU is busy, see docs/benchmarking.md).
  bool trace_ = std::getenv("SSI_LINKEMU_TRACE") != nullptr;
  int traced_ = 0;
  std::vector<Port> ports_;
  std::unique_ptr<SwitchTable> table_;
  UniqueFd ep_, timer_, signals_;
};

}  // namespace
}  // namespace ssi::lab

int main(int argc, char** argv) {
  using namespace ssi::lab;
  CLI::App app{"ssi-linkemu: userspace Ethernet switch over existing interfaces, with emulated links (delay, jitter, rate)"};
  std::vector<std::string> ports;
  double delay_us = 0, jitter_us = 0, rate_gbit = 0;
  std::uint64_t seed = 1;
  app.add_option("--port", ports, "Interface NAME[:DELAY_US[:RATE_GBIT[:JITTER_US]]] (one per node)")
      ->required();
  app.add_option("--delay-us", delay_us, "One-way delay of every link")->check(CLI::Range(0.0, 1e6));
  app.add_option("--jitter-us", jitter_us, "Uniform jitter (+/-), order kept")->check(CLI::Range(0.0, 1e6));
  app.add_option("--rate-gbit", rate_gbit, "Link rate, 0 = unlimited")->check(CLI::Range(0.0, 1e4));
  app.add_option("--seed", seed, "Jitter seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  LinkParams base;
  base.delay_ns = static_cast<std::uint64_t>(delay_us * 1000);
  base.jitter_ns = static_cast<std::uint64_t>(jitter_us * 1000);
  base.rate_gbit = rate_gbit;
  Switch sw;
  if (auto r = sw.open(ports, base, seed); !r.ok()) {
    std::fprintf(stderr, "ssi-linkemu: error: %s\n", r.error().to_string().c_str());
    return ssi::exit_status(ssi::ExitCode::kError);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  auto r = sw.run();
  std::printf("%s\n", sw.counters_json().c_str());
  if (!r.ok()) {
    std::fprintf(stderr, "ssi-linkemu: error: %s\n", r.error().to_string().c_str());
    return ssi::exit_status(ssi::ExitCode::kFailed);
  }
  return 0;
}
