#include "ssi/version.hpp"

namespace ssi {

std::string_view version() { return SSI_VERSION_STRING; }

}  // namespace ssi
