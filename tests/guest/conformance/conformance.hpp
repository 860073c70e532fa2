// Reads the conformance kernel's lines ("conform: NAME STATUS ...") and the
// expectation files next to this header: expected.txt ("NAME STATUS", what
// the architecture says and ssi must print) and reference_differences.txt
// ("NAME STATUS reason": where the QEMU reference prints something else, why).
#pragma once

#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace ssi::conformance {

using Results = std::map<std::string, std::string>;  // check name -> ok / skip / FAIL

inline Results parse_output(const std::string& out) {
  Results r;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string tag, name, status;
    if (!(words >> tag >> name >> status) || tag != "conform:") continue;
    if (name == "start" || name == "done," || name == "unexpected") continue;
    r[name] = status;
  }
  return r;
}

// "NAME STATUS [reason...]" lines; '#' starts a comment line.
inline Results read_table(const std::string& file, std::map<std::string, std::string>* reasons) {
  Results r;
  std::ifstream in(std::string(SSI_CONFORM_DIR) + "/" + file);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string name, status, reason;
    words >> name >> status;
    std::getline(words, reason);
    r[name] = status;
    if (reasons) (*reasons)[name] = reason;
  }
  return r;
}

// Every difference between `got` and `want`, one per line ("" if none).
inline std::string diff(const Results& got, const Results& want) {
  std::string d;
  for (const auto& [name, status] : want) {
    auto it = got.find(name);
    std::string g = it == got.end() ? "absent" : it->second;
    if (g != status) d += name + ": got " + g + ", want " + status + "\n";
  }
  for (const auto& [name, status] : got)
    if (!want.count(name)) d += name + ": unexpected check (" + status + ")\n";
  return d;
}

}  // namespace ssi::conformance
