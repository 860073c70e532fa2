// What this binary was built from, for `ssi version` and `--json` files.
#pragma once

#include <string_view>

namespace ssi::cluster {

// `git describe --always --dirty` of the source tree at build time
// ("unknown" outside a git checkout); refreshed on every build.
std::string_view git_revision();

}  // namespace ssi::cluster
