// What the control commands served on --metrics share (ssi move, ssi
// checkpoint): one JSON library for requests and replies (QMP-style:
// {"execute":CMD,...} -> {"return":{...}} or {"error":{"class","desc"}}),
// and a caller that blocks until the coordinator's thread answers its order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.hpp"

namespace ssi::cluster {

using ControlJson = nlohmann::ordered_json;

// A request line as a JSON object, or nullopt (not JSON, or not an object).
inline std::optional<ControlJson> parse_control(const std::string& line) {
  ControlJson j = ControlJson::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// The unsigned 32-bit number under `key`, if there is one.
inline std::optional<std::uint32_t> control_uint(const ControlJson& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned() || it->get<std::uint64_t>() > 0xffffffffu) return std::nullopt;
  return it->get<std::uint32_t>();
}

// Adds the members of `fields` (`"key": value, ...`, a node's summary as it
// travels in a Cap'n Proto Text) to `out`; nothing if it does not parse.
inline void merge_fields(ControlJson& out, const std::string& fields) {
  if (fields.empty()) return;
  ControlJson more = ControlJson::parse("{" + fields + "}", nullptr, false);
  if (more.is_object()) out.update(more);
}

// {"error":{"class":CLS,"desc":DESC}} on one line.
inline std::string qmp_error(const std::string& desc, const std::string& cls = "GenericError") {
  return ControlJson{{"error", {{"class", cls}, {"desc", desc}}}}.dump();
}

// {"return":R} on one line.
inline std::string qmp_return(const ControlJson& r) { return ControlJson{{"return", r}}.dump(); }

// A reply's "return" object, or its error's desc (or why it is no reply).
inline Result<ControlJson> control_return(const std::string& reply) {
  auto j = parse_control(reply);
  if (!j) return make_error(Errc::kInvalidArgument, "the reply is not a JSON object: " + reply);
  if (auto e = j->find("error"); e != j->end())
    return make_error(Errc::kInvalidArgument,
                      e->is_object() ? e->value("desc", std::string("error")) : std::string("error"));
  auto r = j->find("return");
  if (r == j->end() || !r->is_object()) return make_error(Errc::kInvalidArgument, "the reply has no \"return\"");
  return *r;
}

// One order's answer: callback() goes into the order (called once, on any
// thread); wait() blocks for it.
template <class T>
class AwaitedAnswer {
 public:
  std::function<void(Result<T>)> callback() const {
    return [s = state_](Result<T> r) {
      std::lock_guard lock(s->mu);
      s->result = std::move(r);
      s->cv.notify_all();
    };
  }
  // The answer, or nullopt after `timeout`.
  std::optional<Result<T>> wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(state_->mu);
    if (!state_->cv.wait_for(lock, timeout, [&] { return state_->result.has_value(); })) return std::nullopt;
    return std::move(state_->result);
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<T>> result;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace ssi::cluster
