// Runs the built `pagedkv` binary the way a user would, for the CLI tests: arguments are
// shell-quoted, stdout and stderr are captured through temporary files, stdin is empty, and
// PAGEDKV_LOG / PAGEDKV_TRACES_DIR are unset so the environment cannot change the output.
//
//   CliResult r = RunPagedkv({"size", "--model", "llama-2-7b", "--json"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
#ifndef PAGEDKV_TESTS_TOOLS_CLI_RUNNER_H_
#define PAGEDKV_TESTS_TOOLS_CLI_RUNNER_H_

#include <string>
#include <vector>

namespace pagedkv::testing {

struct CliResult {
  int exit_code = -1;  // -1 when the process did not exit normally
  std::string out;
  std::string err;
};

// `env_prefix` is put between `env` and the binary, e.g. "PAGEDKV_LOG=trace". `stdout_redirect`,
// when given, replaces the capture of stdout with a shell redirection ("/dev/full" writes to a
// full device, "&-" closes the descriptor); `out` is then empty.
CliResult RunPagedkv(const std::vector<std::string>& args, const std::string& env_prefix = "",
                     const std::string& stdout_redirect = "");

// Single-quotes `s` for /bin/sh.
std::string ShellQuote(const std::string& s);

// The whole file, or "" when it cannot be read.
std::string ReadWholeFile(const std::string& path);

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_TOOLS_CLI_RUNNER_H_
