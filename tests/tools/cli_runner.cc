#include "tests/tools/cli_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace pagedkv::testing {

std::string ShellQuote(const std::string& s) {
  std::string quoted = "'";
  for (char c : s) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

CliResult RunPagedkv(const std::vector<std::string>& args, const std::string& env_prefix,
                     const std::string& stdout_redirect) {
  static int counter = 0;
  const std::string base = ::testing::TempDir() + "pagedkv_cli_" + std::to_string(::getpid()) +
                           "_" + std::to_string(counter++);
  const std::string out_path = base + ".out";
  const std::string err_path = base + ".err";
  std::string command =
      "env -u PAGEDKV_LOG -u PAGEDKV_TRACES_DIR " + env_prefix + " " + ShellQuote(PAGEDKV_CLI_PATH);
  for (const std::string& arg : args) command += " " + ShellQuote(arg);
  const std::string out_target = stdout_redirect.empty()   ? ShellQuote(out_path)
                                 : stdout_redirect == "&-" ? std::string("&-")
                                                           : ShellQuote(stdout_redirect);
  command += " >" + out_target + " 2>" + ShellQuote(err_path) + " </dev/null";
  const int status = std::system(command.c_str());
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadWholeFile(out_path);
  result.err = ReadWholeFile(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return result;
}

}  // namespace pagedkv::testing
