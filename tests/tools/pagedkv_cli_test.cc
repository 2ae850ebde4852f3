// Runs the built `pagedkv` binary (path from CMake: PAGEDKV_CLI_PATH) the way a user would and
// checks stdout, stderr and the exit code.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/model_spec.h"
#include "tests/tools/cli_runner.h"

namespace {

using RunResult = pagedkv::testing::CliResult;
using pagedkv::testing::ReadWholeFile;

using ::testing::HasSubstr;
using ::testing::Not;

// `env_prefix` is put before the binary, e.g. "PAGEDKV_LOG=debug". PAGEDKV_LOG is otherwise
// removed so that the caller's environment cannot change the output.
RunResult RunCli(const std::vector<std::string>& args, const std::string& env_prefix = "") {
  return pagedkv::testing::RunPagedkv(args, env_prefix);
}

nlohmann::json ParseJson(const RunResult& r) {
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  return j;
}

const std::vector<std::string> kIssueExample = {
    "size",      "--model", "llama-2-7b", "--context", "2048",         "--dtype", "fp16",
    "--gpu-mem", "80GiB",   "--weights",  "13.5GiB",   "--block-size", "16"};

TEST(PagedkvCliTest, SizeIssueExamplePrintsTheTable) {
  RunResult r = RunCli(kIssueExample);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("llama-2-7b"));
  EXPECT_THAT(r.out, HasSubstr("bytes per token"));
  EXPECT_THAT(r.out, HasSubstr("512.00 KiB"));
  EXPECT_THAT(r.out, HasSubstr("524288"));
  EXPECT_THAT(r.out, HasSubstr("8.00 MiB"));
  EXPECT_THAT(r.out, HasSubstr("1.00 GiB"));
  EXPECT_THAT(r.out, HasSubstr("1073741824"));
  EXPECT_THAT(r.out, HasSubstr("66.50 GiB"));
  EXPECT_THAT(r.out, HasSubstr("blocks in budget    8512\n"));
  EXPECT_THAT(r.out, HasSubstr("tokens in budget    136192\n"));
  EXPECT_THAT(r.out, HasSubstr("max sequences       66 at 2048 tokens"));
}

TEST(PagedkvCliTest, SizeJsonHasTheDocumentedKeys) {
  std::vector<std::string> args = kIssueExample;
  args.push_back("--json");
  RunResult r = RunCli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = ParseJson(r);
  EXPECT_EQ(j["model"], "llama-2-7b");
  EXPECT_EQ(j["context"], 2048);
  EXPECT_EQ(j["block_size"], 16);
  EXPECT_EQ(j["dtype"], "fp16");
  EXPECT_EQ(j["gpu_mem"].get<uint64_t>(), 80ull << 30);
  EXPECT_EQ(j["weights"].get<uint64_t>(), 27ull << 29);
  EXPECT_EQ(j["budget"].get<uint64_t>(), 71403831296ull);
  EXPECT_EQ(j["bytes_per_token"].get<uint64_t>(), 524288u);
  EXPECT_EQ(j["bytes_per_block"].get<uint64_t>(), 8388608u);
  EXPECT_EQ(j["bytes_per_sequence"].get<uint64_t>(), 1ull << 30);
  EXPECT_EQ(j["num_blocks"].get<uint64_t>(), 8512u);
  EXPECT_EQ(j["max_tokens"].get<uint64_t>(), 136192u);
  EXPECT_EQ(j["max_sequences"].get<uint64_t>(), 66u);
  ASSERT_TRUE(j["groups"].is_array());
  ASSERT_EQ(j["groups"].size(), 1u);
  EXPECT_EQ(j["groups"][0]["kind"], "full");
  EXPECT_EQ(j["groups"][0]["blocks_per_sequence"], 128);
}

TEST(PagedkvCliTest, EveryPresetSizesAndGroupsAddUp) {
  for (const std::string& name : pagedkv::ModelSpec::PresetNames()) {
    SCOPED_TRACE(name);
    RunResult r = RunCli({"size", "--model", name, "--context", "8192", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json j = ParseJson(r);
    uint64_t per_token = 0, per_block = 0, per_seq = 0;
    for (const nlohmann::json& g : j["groups"]) {
      per_token += g["bytes_per_token"].get<uint64_t>();
      per_block += g["bytes_per_block"].get<uint64_t>();
      per_seq += g["bytes_per_sequence"].get<uint64_t>();
    }
    EXPECT_EQ(per_token, j["bytes_per_token"].get<uint64_t>());
    EXPECT_EQ(per_block, j["bytes_per_block"].get<uint64_t>());
    EXPECT_EQ(per_seq, j["bytes_per_sequence"].get<uint64_t>());
    EXPECT_EQ(j["max_sequences"].get<uint64_t>(),
              j["budget"].get<uint64_t>() / j["bytes_per_sequence"].get<uint64_t>());
  }
}

TEST(PagedkvCliTest, Fp8HalvesTheSequence) {
  RunResult fp16 = RunCli({"size", "--model", "llama-3-8b", "--context", "4096", "--json"});
  RunResult fp8 =
      RunCli({"size", "--model", "llama-3-8b", "--context=4096", "--dtype=fp8", "--json"});
  ASSERT_EQ(fp16.exit_code, 0) << fp16.err;
  ASSERT_EQ(fp8.exit_code, 0) << fp8.err;
  EXPECT_EQ(ParseJson(fp8)["dtype"], "fp8_e4m3");
  EXPECT_EQ(ParseJson(fp8)["bytes_per_sequence"].get<uint64_t>() * 2,
            ParseJson(fp16)["bytes_per_sequence"].get<uint64_t>());
}

TEST(PagedkvCliTest, ModelFromJsonFile) {
  const std::string path = ::testing::TempDir() + "pagedkv_cli_test_model.json";
  {
    std::ofstream out(path);
    out << R"({"name": "tiny", "num_q_heads": 4, "num_kv_heads": 1, "head_dim": 64,
               "layers": ["full", "sliding:32", "shares:0"]})";
  }
  RunResult r =
      RunCli({"size", "--model", path, "--context", "100", "--block-size", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = ParseJson(r);
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["bytes_per_token"].get<uint64_t>(), 2u * 2 * 64 * 2);  // shares layer adds nothing
  // full: 13 blocks of 8 tokens; sliding(32): 32/8 + 1 = 5 blocks.
  EXPECT_EQ(j["bytes_per_sequence"].get<uint64_t>(), 256u * 8 * (13 + 5));

  {
    std::ofstream out(path);
    out << R"({"name": "bad", "num_q_heads": 4, "num_kv_heads": 3, "head_dim": 64, "num_layers": 2})";
  }
  r = RunCli({"size", "--model", path});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(path));
  EXPECT_THAT(r.err, HasSubstr("num_kv_heads (3) must divide num_q_heads (4)"));
  std::remove(path.c_str());
}

TEST(PagedkvCliTest, MissingModelFileNamesThePath) {
  RunResult r = RunCli({"size", "--model", "/no/such/dir/model.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("/no/such/dir/model.json"));
  EXPECT_THAT(r.err, HasSubstr("cannot be opened"));
}

TEST(PagedkvCliTest, UnknownPresetListsPresets) {
  RunResult r = RunCli({"size", "--model", "gpt-9"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("pagedkv size: error: --model 'gpt-9'"));
  EXPECT_THAT(r.err, HasSubstr("llama-3-70b"));
}

TEST(PagedkvCliTest, BadInputNamesFlagAndValueWithExitCode2) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"size", "--model", "llama-2-7b", "--context", "abc"}, "--context 'abc' is not an integer"},
      {{"size", "--model", "llama-2-7b", "--context", "0"},
       "--context '0' must be in [1, 1099511627776]"},
      {{"size", "--model", "llama-2-7b", "--block-size", "0"}, "--block-size '0' must be in [1, "},
      {{"size", "--model", "llama-2-7b", "--gpu-mem", "80XB"},
       "--gpu-mem '80XB' is not a byte size"},
      {{"size", "--model", "llama-2-7b", "--gpu-mem-fraction", "1.5"},
       "--gpu-mem-fraction '1.5' must be in (0, 1]"},
      {{"size", "--model", "llama-2-7b", "--dtype", "fp12"}, "--dtype: unknown dtype 'fp12'"},
      {{"size", "--model", "llama-2-7b", "--context"}, "flag --context needs a value"},
      {{"size", "--model", "llama-2-7b", "--contex", "5"}, "unknown flag '--contex'"},
      {{"size", "--model", "llama-2-7b", "extra"}, "unexpected argument 'extra'"},
      {{"size", "--model", "llama-2-7b", "--gpu-mem", "24GB", "--weights", "30GB"},
       "do not fit in the usable GPU memory"},
      {{"size"}, "missing --model"},
      {{"size", "--model", "llama-2-7b", "--log-level", "loud"},
       "--log-level 'loud' is not a level"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    RunResult r = RunCli(c.args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("pagedkv size: error: "));
    EXPECT_THAT(r.err, HasSubstr(c.expected));
  }
}

TEST(PagedkvCliTest, UnknownCommandListsCommands) {
  RunResult r = RunCli({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate'; commands: size"));
  r = RunCli({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing command"));
  r = RunCli({"--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown flag '--bogus'"));
}

TEST(PagedkvCliTest, HelpAndVersion) {
  RunResult r = RunCli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: pagedkv [OPTIONS] COMMAND"));
  EXPECT_THAT(r.out, HasSubstr("Commands:"));
  EXPECT_THAT(r.out, HasSubstr("  size "));
  EXPECT_THAT(r.out, HasSubstr("--log-level LEVEL"));
  for (const char* help : {"--help", "-h"}) {
    r = RunCli({"size", help});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_THAT(r.out, HasSubstr("Usage: pagedkv size [OPTIONS]"));
    for (const char* flag : {"--model", "--context", "--block-size", "--dtype", "--gpu-mem",
                             "--weights", "--gpu-mem-fraction", "--json", "--list-models"}) {
      EXPECT_THAT(r.out, HasSubstr(flag));
    }
  }
  r = RunCli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, ::testing::StartsWith("pagedkv "));
  EXPECT_THAT(r.out, HasSubstr("."));
}

TEST(PagedkvCliTest, ListModels) {
  RunResult r = RunCli({"size", "--list-models"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& name : pagedkv::ModelSpec::PresetNames()) {
    EXPECT_THAT(r.out, HasSubstr(name));
  }
  EXPECT_THAT(r.out, HasSubstr(" context "));
  EXPECT_THAT(r.out, HasSubstr("131072"));  // the Llama-3.1 context
  r = RunCli({"size", "--list-models", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = ParseJson(r);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j.size(), pagedkv::ModelSpec::PresetNames().size());
  EXPECT_EQ(j[0]["name"], "llama-2-7b");
  EXPECT_EQ(j[0]["max_context_tokens"], 4096);
}

TEST(PagedkvCliTest, LogLevelFlagAndEnvironment) {
  const std::vector<std::string> size = {"size", "--model", "qwen2.5-1.5b"};
  RunResult quiet = RunCli(size);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_THAT(quiet.err, Not(HasSubstr("size: model=")));

  std::vector<std::string> args = {"--log-level", "debug"};
  args.insert(args.end(), size.begin(), size.end());
  RunResult global = RunCli(args);
  EXPECT_EQ(global.exit_code, 0) << global.err;
  EXPECT_THAT(global.err, HasSubstr("size: model=qwen2.5-1.5b"));

  args = size;
  args.push_back("--log-level=debug");
  RunResult local = RunCli(args);
  EXPECT_EQ(local.exit_code, 0) << local.err;
  EXPECT_THAT(local.err, HasSubstr("size: model=qwen2.5-1.5b"));

  RunResult env = RunCli(size, "PAGEDKV_LOG=debug");
  EXPECT_EQ(env.exit_code, 0) << env.err;
  EXPECT_THAT(env.err, HasSubstr("size: model=qwen2.5-1.5b"));

  RunResult bad = RunCli({"--log-level", "verbose", "size", "--model", "qwen2.5-1.5b"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("pagedkv: error: --log-level 'verbose' is not a level"));
}

}  // namespace
