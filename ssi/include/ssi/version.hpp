#pragma once

#include <string_view>

namespace ssi {

// Version of the ssi binary; nodes with a different version are refused.
std::string_view version();

}  // namespace ssi
