// x86-TSO litmus tests run by host threads of several DSM nodes. Each role
// runs on node (role % nodes); node 0 also runs the coordinator, which
// resets x and y, releases an iteration through a `go` word and collects the
// registers once every role has counted itself in `done`. All of that state
// lives on DSM pages, so the harness itself relies on coherence too.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsm/node.hpp"

namespace ssi::dsm::testing {

inline constexpr std::uint64_t kLitmusPages = 8;
// Page layout: 0 counter workload, 1 go, 2 x, 3 y, 4 done, 5 registers.
inline constexpr std::uint64_t kGoPage = 1, kXPage = 2, kYPage = 3, kDonePage = 4, kRegPage = 5;

using Word = volatile std::uint64_t;

inline void compiler_barrier() { asm volatile("" ::: "memory"); }
inline void mfence() { asm volatile("mfence" ::: "memory"); }

struct Litmus {
  std::string name;
  int roles;
  int regs;
  std::vector<std::vector<int>> role_regs;  // registers each role writes
  // body(role, x, y, r): r[k] are this test's registers (plain memory).
  std::function<void(int, Word*, Word*, std::uint64_t*)> body;
  std::function<bool(const std::uint64_t*)> forbidden;
};

inline std::optional<Litmus> litmus_by_name(const std::string& name) {
  if (name == "SB")
    return Litmus{"SB", 2, 2, {{0}, {1}},
                  [](int role, Word* x, Word* y, std::uint64_t* r) {
                    if (role == 0) { *x = 1; mfence(); r[0] = *y; }
                    else { *y = 1; mfence(); r[1] = *x; }
                  },
                  [](const std::uint64_t* r) { return r[0] == 0 && r[1] == 0; }};
  if (name == "MP")
    return Litmus{"MP", 2, 2, {{}, {0, 1}},
                  [](int role, Word* x, Word* y, std::uint64_t* r) {
                    if (role == 0) { *x = 1; compiler_barrier(); *y = 1; }
                    else { r[0] = *y; compiler_barrier(); r[1] = *x; }
                  },
                  [](const std::uint64_t* r) { return r[0] == 1 && r[1] == 0; }};
  if (name == "LB")
    return Litmus{"LB", 2, 2, {{0}, {1}},
                  [](int role, Word* x, Word* y, std::uint64_t* r) {
                    if (role == 0) { r[0] = *x; compiler_barrier(); *y = 1; }
                    else { r[1] = *y; compiler_barrier(); *x = 1; }
                  },
                  [](const std::uint64_t* r) { return r[0] == 1 && r[1] == 1; }};
  if (name == "IRIW")
    return Litmus{"IRIW", 4, 4, {{}, {}, {0, 1}, {2, 3}},
                  [](int role, Word* x, Word* y, std::uint64_t* r) {
                    if (role == 0) *x = 1;
                    else if (role == 1) *y = 1;
                    else if (role == 2) { r[0] = *x; compiler_barrier(); r[1] = *y; }
                    else { r[2] = *y; compiler_barrier(); r[3] = *x; }
                  },
                  [](const std::uint64_t* r) {
                    return r[0] == 1 && r[1] == 0 && r[2] == 1 && r[3] == 0;
                  }};
  return std::nullopt;
}

// Spins (yielding: the reactor may share this CPU) until pred or timeout.
inline bool spin_until(const std::function<bool()>& pred, std::chrono::seconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

// Runs `iters` iterations; node 0 returns the outcome histogram as JSON.
inline Result<nlohmann::json> run_litmus(const Litmus& t, Node& node, std::uint32_t self,
                                         std::uint32_t nodes, std::uint64_t iters,
                                         std::chrono::seconds timeout) {
  auto word = [&](std::uint64_t page, std::uint64_t off = 0) {
    return reinterpret_cast<Word*>(node.base() + page * kPageSize + off);
  };
  auto atomic = [&](std::uint64_t page) {
    return std::atomic_ref<std::uint64_t>(*const_cast<std::uint64_t*>(word(page)));
  };
  std::atomic<bool> timed_out{false};
  std::vector<std::thread> roles;
  for (int role = 0; role < t.roles; ++role) {
    if (static_cast<std::uint32_t>(role) % nodes != self) continue;
    roles.emplace_back([&, role] {
      std::mt19937 rng(role * 7919 + self);
      std::uint64_t r[4] = {};
      for (std::uint64_t i = 1; i <= iters && !timed_out; ++i) {
        if (!spin_until([&] { return atomic(kGoPage).load() >= i; }, timeout)) {
          timed_out = true;
          return;
        }
        for (unsigned k = rng() % 64; k > 0; --k) asm volatile("pause");  // vary interleavings
        t.body(role, word(kXPage), word(kYPage), r);
        for (int k : t.role_regs[role]) *word(kRegPage, k * 64) = r[k];
        atomic(kDonePage).fetch_add(1);
      }
    });
  }
  nlohmann::json out;
  if (self == 0) {
    std::map<std::string, std::uint64_t> hist;
    std::uint64_t forbidden = 0;
    for (std::uint64_t i = 1; i <= iters && !timed_out; ++i) {
      *word(kXPage) = 0;
      *word(kYPage) = 0;
      atomic(kGoPage).store(i);
      if (!spin_until([&] { return atomic(kDonePage).load() == i * t.roles; }, timeout)) {
        timed_out = true;
        break;
      }
      std::uint64_t r[4] = {};
      std::string key;
      for (int k = 0; k < t.regs; ++k) {
        r[k] = *word(kRegPage, k * 64);
        key += std::to_string(r[k]);
      }
      ++hist[key];
      forbidden += t.forbidden(r);
    }
    out = {{"test", t.name}, {"iterations", iters}, {"outcomes", hist}, {"forbidden", forbidden}};
  }
  for (auto& th : roles) th.join();
  if (timed_out) return make_error(Errc::kTimeout, t.name + ": an iteration did not complete");
  return out;
}

}  // namespace ssi::dsm::testing
