// Requester side of the MSI protocol: this node's state of every page
// (I / S / M) and its outstanding request, if any. Pure logic: it decides,
// the node agent performs the uffd ioctls and sends the messages. Every
// method is called on the reactor thread and the agent performs the
// returned action before it next yields, so state and mapping agree.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::dsm {

enum class PageState : std::uint8_t { kI, kS, kM };
enum class Pending : std::uint8_t { kNone, kRead, kWrite, kUpgrade };

// What to do about a uffd fault.
enum class FaultAction : std::uint8_t {
  kWake,         // already satisfied (a stale event): just wake the thread
  kWait,         // a request for this page is in flight: its install wakes us
  kSendRead,     // ReadReq to home (I -> IS_D)
  kSendWrite,    // WriteReq to home (I -> IM_D)
  kSendUpgrade,  // WriteReq|kUpgrade to home (S -> SM_A)
};

// How to map a granted page.
enum class InstallAction : std::uint8_t {
  kCopyWp,     // UFFDIO_COPY|MODE_WP of the payload (S)
  kZeroWp,     // UFFDIO_COPY|MODE_WP of a local zero page (S, no transfer)
  kCopy,       // UFFDIO_COPY of the payload (M)
  kZero,       // UFFDIO_ZEROPAGE (M, no transfer)
  kUnprotect,  // UFFDIO_WRITEPROTECT off: upgrade of the copy we hold (S -> M)
};

struct PageView {
  PageState state = PageState::kI;
  Pending pending = Pending::kNone;
  std::uint64_t version = 0;  // version of the grant our copy came from
};

class PageTable {
 public:
  explicit PageTable(std::uint64_t pages) : pages_(pages) {}

  // `p` must be in range (the Region checked it).
  FaultAction on_fault(PageNo p, bool write);
  // Grant for our outstanding request; flags = GrantFlags. A write's grant
  // comes with the number of InvAcks (from the sharers it invalidated) to
  // collect before installing; they may arrive before or after it. nullopt:
  // valid, but acks are still due (on_inv_ack returns the action with the
  // last one).
  Result<std::optional<InstallAction>> on_grant(PageNo p, std::uint64_t version,
                                                std::uint64_t flags, bool has_payload,
                                                std::uint64_t acks = 0);
  // InvAck for our outstanding write: the install action if it completes a
  // waiting grant.
  Result<std::optional<InstallAction>> on_inv_ack(PageNo p, std::uint64_t version);
  // Inv: returns true if the mapping must be dropped. Always answered with
  // InvAck unless it is an error (stale/out of range).
  Result<bool> on_inv(PageNo p, std::uint64_t version);
  // Fetch: we must hold M. After it: S (downgrade) or I (invalidate).
  Result<void> on_fetch(PageNo p, std::uint64_t version, bool invalidate);

  PageView view(PageNo p) const;
  std::uint64_t pages() const { return pages_; }

 private:
  // A write's acks and grant, while they are being collected.
  struct Collect {
    std::uint64_t acks = 0, ack_version = 0;
    bool granted = false;
    std::uint64_t needed = 0, version = 0, flags = 0;
    InstallAction action = InstallAction::kCopy;
  };
  Result<PageView*> checked(PageNo p, const char* what);
  PageView& at(PageNo p);
  InstallAction apply(PageView& v, std::uint64_t version, std::uint64_t flags,
                      InstallAction action);

  std::uint64_t pages_;
  std::vector<PageView> table_ = std::vector<PageView>(pages_);
  std::unordered_map<std::uint64_t, Collect> collecting_;  // pages with acks or a grant due
};

}  // namespace ssi::dsm
