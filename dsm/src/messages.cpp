#include "dsm/messages.hpp"

namespace ssi::dsm {

std::string_view msg_name(rdma::FrameType t) {
  switch (t) {
    case kReadReq: return "ReadReq";
    case kWriteReq: return "WriteReq";
    case kGrant: return "Grant";
    case kGrantAck: return "GrantAck";
    case kInv: return "Inv";
    case kInvAck: return "InvAck";
    case kFetch: return "Fetch";
    case kFetchAck: return "FetchAck";
    case kHandEntry: return "HandEntry";
    case kWriteback: return "Writeback";
    case kLeave: return "Leave";
    case kHandEnd: return "HandEnd";
    case kHandEndAck: return "HandEndAck";
    case kHandEntries: return "HandEntries";
    default: return "unknown";
  }
}

}  // namespace ssi::dsm
