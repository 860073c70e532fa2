// rdma_test_node: one node of the multi-process transport test. Talks to the
// test over stdin/stdout, one line per message:
//   out "ADDR <address>"          once listening
//   in  "PEER <id> <address>"...  then "GO": connect to all, rpc each peer
//   out "RPCS_OK <n> mean_us=<4 KiB rpc round trip>" | "RPCS_FAIL <why>"
//   out "DOWN <id> <errc>"        whenever a peer goes down
//   in  "QUIT" or EOF             shut down and exit 0
// Exits by itself after 60 s so a lost parent never leaves it behind.
#include <sys/epoll.h>
#include <unistd.h>

#include <boost/fiber/operations.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "rdma/factory.hpp"

using namespace ssi;
using namespace ssi::rdma;
using namespace std::chrono_literals;

namespace {

constexpr FrameType kEcho = 0xf002;

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void rpc_all(Transport& t, const std::map<NodeId, Address>& peers) {
  for (auto& [peer, addr] : peers) {
    if (auto r = t.connect(peer, addr); !r.ok()) return say("RPCS_FAIL connect: " + r.error().to_string());
  }
  std::vector<std::byte> page(kMaxPayload, std::byte{0x42});
  int good = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    for (auto& [peer, addr] : peers) {
      Frame req = Frame::make(kEcho, i);
      req.payload = Payload::borrow(page);
      auto r = t.rpc(peer, std::move(req), 5s);
      if (!r.ok()) return say("RPCS_FAIL rpc: " + r.error().to_string());
      if (r->header.arg0 != std::uint64_t(i) + 1 || r->payload.size() != page.size())
        return say("RPCS_FAIL wrong reply");
      ++good;
    }
  }
  auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  say("RPCS_OK " + std::to_string(good) + " mean_us=" + std::to_string(us / good));
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t id = argc > 1 ? static_cast<std::uint32_t>(std::stoul(argv[1])) : 0;
  std::string kind = argc > 2 ? argv[2] : "tcp";
  ReactorOptions options;  // SSI_REACTOR_SPIN_US: try spin-before-block
  if (const char* spin = std::getenv("SSI_REACTOR_SPIN_US")) options.spin = std::chrono::microseconds(std::atoi(spin));
  auto reactor = Reactor::create(options);
  if (!reactor.ok()) return 1;
  std::thread deadline([] {
    std::this_thread::sleep_for(60s);
    std::_Exit(3);
  });
  deadline.detach();
  int rc = 0;
  (*reactor)->run([&] {
    TransportConfig config;
    config.kind = kind;
    config.self = NodeId{id};
    config.listen = "tcp:127.0.0.1:0";
    auto made = make_transport(config, **reactor);
    if (!made.ok()) {
      say("ERROR " + made.error().to_string());
      rc = 1;
      return (*reactor)->stop();
    }
    Transport& t = **made;
    t.on_receive([&t](Frame&& f) {
      Frame r = Frame::make(kEcho, f.header.arg0 + 1);
      r.payload = std::move(f.payload);
      (void)t.reply(f.header, std::move(r));
    });
    t.on_peer_down([](NodeId p, const Error& e) {
      say("DOWN " + std::to_string(p.value()) + " " + std::string(errc_name(e.code)));
    });
    say("ADDR " + t.local_address());
    std::map<NodeId, Address> peers;
    std::string pending;
    bool quit = false;
    auto on_stdin = [&](std::uint32_t) {
      char buf[512];
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) {
        quit = true;
        return;
      }
      pending.append(buf, static_cast<std::size_t>(n));
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
        std::istringstream line(pending.substr(0, nl));
        pending.erase(0, nl + 1);
        std::string cmd;
        line >> cmd;
        if (cmd == "PEER") {
          std::uint32_t p;
          std::string addr;
          line >> p >> addr;
          peers[NodeId{p}] = addr;
        } else if (cmd == "GO") {
          rpc_all(t, peers);
        } else if (cmd == "QUIT") {
          quit = true;
        }
      }
    };
    if (auto w = (*reactor)->watch(0, EPOLLIN, on_stdin); !w.ok()) {
      say("ERROR " + w.error().to_string());
      quit = true;
    }
    while (!quit) boost::this_fiber::sleep_for(10ms);
    (*reactor)->unwatch(0);
    t.on_receive({});
    t.on_peer_down({});
    t.shutdown();
    made = make_error(Errc::kShutdown, "done");  // destroy the transport on the reactor thread
    (*reactor)->stop();
  });
  return rc;
}
