// Tests of the flag parsing every `pagedkv` command shares (tools/internal/flags.h on CLI11, and
// the value grammar of tools/internal/flag_values.h): both value forms, booleans, defaults in
// --help, did-you-mean hints, missing and bad values, positionals and subcommand splitting.
#include "tools/internal/flags.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/internal/flag_values.h"

namespace pagedkv::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Flags {
  std::string model = "llama";
  int64_t context = 2048;
  double fraction = 1.0;
  uint64_t bytes = 0;
  bool json = false;
  std::string custom;
};

class FlagSetTest : public ::testing::Test {
 protected:
  FlagSetTest() : parser_("pagedkv test", "A test command.") {
    parser_.AddString("model", "NAME", "the model", &f_.model);
    parser_.AddInt("context", "TOKENS", "tokens", &f_.context, 1, 1 << 20);
    parser_.AddDouble("fraction", "F", "a fraction", &f_.fraction);
    parser_.AddBytes("gpu-mem", "BYTES", "memory", &f_.bytes, "80GiB");
    parser_.AddBool("json", "json output", &f_.json);
    parser_.AddCustom("level", "LEVEL", "a level", [this](std::string_view v) -> absl::Status {
      if (v != "a" && v != "b") return absl::InvalidArgumentError("is not a or b");
      f_.custom = std::string(v);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) { return parser_.Parse(args); }

  std::string ErrorOf(std::vector<std::string> args) {
    absl::StatusOr<ParsedArgs> parsed = Parse(std::move(args));
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(parsed.status().message());
  }

  Flags f_;
  FlagSet parser_;
};

TEST_F(FlagSetTest, SpaceAndEqualsFormsAndBooleans) {
  absl::StatusOr<ParsedArgs> parsed = Parse({"--model", "mistral", "--context=4096", "--fraction",
                                             "0.9", "--gpu-mem=24GB", "--json", "--level", "b"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->help);
  EXPECT_EQ(f_.model, "mistral");
  EXPECT_EQ(f_.context, 4096);
  EXPECT_DOUBLE_EQ(f_.fraction, 0.9);
  EXPECT_EQ(f_.bytes, 24'000'000'000ull);
  EXPECT_TRUE(f_.json);
  EXPECT_EQ(f_.custom, "b");
  EXPECT_TRUE(parser_.IsSet("context"));
  EXPECT_FALSE(parser_.IsSet("nothing"));
}

TEST_F(FlagSetTest, DefaultsStayWhenFlagsAreAbsentAndLastValueWins) {
  ASSERT_TRUE(Parse({"--context", "1", "--context", "7"}).ok());
  EXPECT_EQ(f_.context, 7);
  EXPECT_EQ(f_.model, "llama");
  EXPECT_FALSE(parser_.IsSet("model"));
  ASSERT_TRUE(Parse({}).ok());
  EXPECT_FALSE(parser_.IsSet("context"));  // IsSet refers to the last Parse()
}

TEST_F(FlagSetTest, BooleanWithExplicitValue) {
  ASSERT_TRUE(Parse({"--json=true"}).ok());
  EXPECT_TRUE(f_.json);
  ASSERT_TRUE(Parse({"--json=false"}).ok());
  EXPECT_FALSE(f_.json);
  EXPECT_THAT(ErrorOf({"--json=maybe"}), HasSubstr("--json 'maybe' is not a boolean"));
}

TEST_F(FlagSetTest, HelpIsReportedAndListsEveryFlagWithDefaults) {
  for (const char* flag : {"--help", "-h"}) {
    absl::StatusOr<ParsedArgs> parsed = Parse({"--context", "5", flag});
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->help);
  }
  const std::string help = parser_.Help();
  EXPECT_THAT(help, HasSubstr("Usage: pagedkv test [OPTIONS]"));
  EXPECT_THAT(help, HasSubstr("A test command."));
  EXPECT_THAT(help, HasSubstr("--model NAME"));
  EXPECT_THAT(help, HasSubstr("(default: llama)"));
  EXPECT_THAT(help, HasSubstr("(default: 2048)"));
  EXPECT_THAT(help, HasSubstr("(default: 80GiB)"));
  EXPECT_THAT(help, HasSubstr("--json "));
  EXPECT_THAT(help, HasSubstr("--level LEVEL"));
}

TEST_F(FlagSetTest, UnknownFlagIsNamedWithSuggestion) {
  std::string error = ErrorOf({"--contxt", "5"});
  EXPECT_THAT(error, HasSubstr("unknown flag '--contxt'"));
  EXPECT_THAT(error, HasSubstr("did you mean '--context'?"));
  EXPECT_THAT(error, HasSubstr("run 'pagedkv test --help'"));
  EXPECT_THAT(ErrorOf({"--zzzzzzzz"}), ::testing::Not(HasSubstr("did you mean")));
  EXPECT_THAT(ErrorOf({"-c", "5"}), HasSubstr("unknown flag '-c'"));
}

TEST_F(FlagSetTest, MissingValueNamesTheFlag) {
  EXPECT_THAT(ErrorOf({"--context"}), HasSubstr("flag --context needs a value (--context TOKENS)"));
  EXPECT_THAT(ErrorOf({"--json", "--model"}), HasSubstr("flag --model needs a value"));
}

TEST_F(FlagSetTest, BadNumbersNameFlagAndValue) {
  EXPECT_THAT(ErrorOf({"--context", "abc"}), HasSubstr("--context 'abc' is not an integer"));
  EXPECT_THAT(ErrorOf({"--context", "12x"}), HasSubstr("--context '12x' is not an integer"));
  EXPECT_THAT(ErrorOf({"--context="}), HasSubstr("flag --context needs a value"));
  EXPECT_THAT(ErrorOf({"--context", "0"}), HasSubstr("--context '0' must be in [1, 1048576]"));
  EXPECT_THAT(ErrorOf({"--context", "-5"}), HasSubstr("--context '-5' must be in [1, 1048576]"));
  EXPECT_THAT(ErrorOf({"--context", "99999999999999999999"}), HasSubstr("must be in"));
  EXPECT_THAT(ErrorOf({"--fraction", "x"}), HasSubstr("--fraction 'x' is not a finite number"));
  EXPECT_THAT(ErrorOf({"--fraction", "nan"}), HasSubstr("is not a finite number"));
  EXPECT_THAT(ErrorOf({"--gpu-mem", "lots"}), HasSubstr("--gpu-mem 'lots' is not a byte size"));
  EXPECT_THAT(ErrorOf({"--level", "c"}), HasSubstr("--level 'c' is not a or b"));
}

TEST_F(FlagSetTest, PositionalArgumentsAreErrors) {
  EXPECT_THAT(ErrorOf({"extra"}), HasSubstr("unexpected argument 'extra'"));
  EXPECT_THAT(ErrorOf({"--", "x"}), HasSubstr("unexpected argument 'x'"));
  EXPECT_TRUE(Parse({"--"}).ok());
}

TEST(FlagSetStopTest, StopAtFirstPositionalReturnsTheRest) {
  bool version = false;
  FlagSet parser("pagedkv", "top");
  parser.AddBool("version", "version", &version);
  parser.StopAtFirstPositional();
  absl::StatusOr<ParsedArgs> parsed =
      parser.Parse(std::vector<std::string>{"--version", "size", "--model", "x", "--version"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(version);
  EXPECT_THAT(parsed->rest, ElementsAre("size", "--model", "x", "--version"));
  parsed = parser.Parse(std::vector<std::string>{"--", "--odd"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_THAT(parsed->rest, ElementsAre("--odd"));
  EXPECT_THAT(parser.Help(), HasSubstr("Usage: pagedkv [OPTIONS] COMMAND [ARGS...]"));
}

TEST_F(FlagSetTest, MisspelledFlagWithValueIsNamedWithSuggestion) {
  EXPECT_THAT(ErrorOf({"--contxt=5"}), HasSubstr("unknown flag '--contxt' (did you mean"));
  EXPECT_THAT(ErrorOf({"--model", "x", "--gpu-me", "1GB"}), HasSubstr("did you mean '--gpu-mem'?"));
}

TEST(FlagSetChoiceTest, ChoicesAreCheckedAndListedInHelp) {
  std::string mode = "recompute";
  FlagSet flags("pagedkv test", "choices");
  flags.AddChoice("preemption", "what happens", {"recompute", "swap"}, &mode);
  ASSERT_TRUE(flags.Parse(std::vector<std::string>{"--preemption", "SWAP"}).ok());
  EXPECT_EQ(mode, "swap");
  absl::StatusOr<ParsedArgs> bad = flags.Parse(std::vector<std::string>{"--preemption=drop"});
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("--preemption 'drop' is not one of recompute, swap"));
  EXPECT_THAT(flags.Help(), HasSubstr("--preemption recompute|swap"));
  EXPECT_THAT(flags.Help(), HasSubstr("(default: recompute)"));  // the value at registration
}

TEST(FlagSetRateTest, RatesAndFlopsTakeUnits) {
  double bw = 0;
  double flops = 0;
  FlagSet flags("pagedkv test", "rates");
  flags.AddRate("bandwidth", "RATE", "bytes per second", &bw);
  flags.AddFlops("flops", "FLOP/S", "compute", &flops);
  ASSERT_TRUE(
      flags.Parse(std::vector<std::string>{"--bandwidth", "3.35TB/s", "--flops", "312T"}).ok());
  EXPECT_DOUBLE_EQ(bw, 3.35e12);
  EXPECT_DOUBLE_EQ(flops, 312e12);
  ASSERT_TRUE(
      flags.Parse(std::vector<std::string>{"--bandwidth=900GiB/s", "--flops=989.4e12"}).ok());
  EXPECT_DOUBLE_EQ(bw, 900.0 * (1ull << 30));
  EXPECT_DOUBLE_EQ(flops, 989.4e12);
  absl::StatusOr<ParsedArgs> bad = flags.Parse(std::vector<std::string>{"--bandwidth", "25"});
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("--bandwidth '25' has no unit; write e.g. 25GB/s"));
  bad = flags.Parse(std::vector<std::string>{"--flops", "fast"});
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--flops 'fast' is not a FLOP/s"));
}

TEST(FlagValuesTest, Grammar) {
  EXPECT_EQ(*ParseIntInRange("42", 0, 100), 42);
  EXPECT_FALSE(ParseIntInRange("4.2", 0, 100).ok());
  EXPECT_EQ(*ParseRate("12.5GB/s"), 12.5e9);
  EXPECT_EQ(*ParseRate("1GiB"), 1073741824.0);
  EXPECT_FALSE(ParseRate("-1GB/s").ok());
  EXPECT_FALSE(ParseRate("1XB/s").ok());
  EXPECT_EQ(*ParseFlops("2.25P"), 2.25e15);
  EXPECT_EQ(*ParseFlops("121TFLOPS"), 121e12);
  EXPECT_FALSE(ParseFlops("0").ok());
  EXPECT_EQ(*ParseByteSizeValue("40GiB"), 40ull << 30);
  EXPECT_EQ(*ParseByteSizeValue("40GB"), 40'000'000'000ull);
  EXPECT_EQ(*ParseChoice("Buddy", {"first-fit", "buddy"}), "buddy");
  EXPECT_EQ(EditDistance("contxt", "context"), 1u);
  EXPECT_EQ(FormatRate(3.35e12), "3.35 TB/s");
}

TEST(FlagSetPositionalTest, PositionalsAnywhereAndUsageNamesThem) {
  std::vector<std::string> dirs;
  std::string out;
  FlagSet flags("pagedkv report", "positionals");
  flags.AddPositionals("DIR", &dirs);
  flags.AddString("out", "PATH", "where", &out);
  ASSERT_TRUE(flags.Parse(std::vector<std::string>{"a", "--out", "x"}).ok());
  EXPECT_THAT(dirs, ElementsAre("a"));
  ASSERT_TRUE(flags.Parse(std::vector<std::string>{"--out=y", "b", "c"}).ok());
  EXPECT_THAT(dirs, ElementsAre("b", "c"));
  EXPECT_EQ(out, "y");
  EXPECT_THAT(flags.Help(), HasSubstr("Usage: pagedkv report [OPTIONS] DIR\n"));
  EXPECT_THAT(flags.Help(), ::testing::Not(HasSubstr("COMMAND")));
}

TEST(FlagSetHelpTest, GroupsAndWrapsLongDescriptions) {
  std::string a, b;
  FlagSet flags("pagedkv test", "groups");
  flags.StartGroup("Workload");
  flags.AddString("trace", "SPEC", std::string(30, 'x') + " " + std::string(60, 'y'), &a, "zz");
  flags.StartGroup("Output");
  flags.AddString("out", "DIR", "where", &b, "results");
  const std::string help = flags.Help();
  EXPECT_THAT(help, HasSubstr("\nWorkload:\n  --trace SPEC  xxx"));
  EXPECT_THAT(help, HasSubstr("\nOutput:\n  --out DIR     where (default: results)\n"));
  // The 60-character word moves to a continuation line indented under the descriptions.
  EXPECT_THAT(help, HasSubstr("\n                " + std::string(60, 'y') + " (default: zz)\n"));
  for (absl::string_view line : absl::StrSplit(help, '\n')) EXPECT_LE(line.size(), 100u);
}

}  // namespace
}  // namespace pagedkv::cli
