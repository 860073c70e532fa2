// `ssi retire` misuse, through the binary (no KVM, no machine): each is one
// line on stderr and exit 2. The refusals that need a machine (an unknown
// node, no standby left) are CoordinatorRetire.* (coordinator_test).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ssi/subprocess.hpp"

namespace ssi::multinode {
namespace {

testing::ProcessOutcome retire(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"retire"};
  a.insert(a.end(), args.begin(), args.end());
  return testing::run_process(SSI_BINARY, a);
}

void expect_one_line(const testing::ProcessOutcome& o, const std::string& needle) {
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
}

TEST(RetireCli, MisuseAndNode0AndNoMachineAreOneLineAndExit2) {
  expect_one_line(retire({}), "ADDR and --node are required");
  expect_one_line(retire({"127.0.0.1:1"}), "ADDR and --node are required");
  expect_one_line(retire({"127.0.0.1:1", "--node"}), "a number must follow --node");
  expect_one_line(retire({"127.0.0.1:1", "--node", "x"}), "--node and --to take a number");
  expect_one_line(retire({"127.0.0.1:1", "--node", "1", "--bogus"}), "unknown argument --bogus");
  expect_one_line(retire({"127.0.0.1:1", "--node", "0"}), "node 0 holds the devices: it cannot retire");
  expect_one_line(retire({"127.0.0.1:1", "--node", "1", "--to", "2"}), "ssi: error: retire: cannot connect");
}

}  // namespace
}  // namespace ssi::multinode
