// Tests of the loaders under hostile input (issue 19): lengths checked at load in 64-bit with the
// limit stated, request counts capped, a byte order mark before a CSV header, non-regular trace
// files, short excerpts of long lines, and deep JSON in Mooncake lines and summary.json.
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "internal/report_data.h"
#include "internal/trace_parse.h"
#include "pagedkv/scheduler/synthetic.h"
#include "pagedkv/scheduler/trace.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

absl::StatusOr<Workload> Parse(const std::string& path, const std::string& text,
                               WorkloadOptions options = {}) {
  return internal::ParseTraceText(path, text, options, std::nullopt);
}

constexpr char kAzureHeader[] = "TIMESTAMP,ContextTokens,GeneratedTokens\n";

TEST(TraceLimitsTest, LengthsBeyondTheLimitAreRefusedAtLoad) {
  // A 2e9-token prompt used to be materialised (7.8 GB) before it was rejected.
  absl::StatusOr<Workload> w =
      Parse("t.csv", std::string(kAzureHeader) + "2023-11-16 18:15:46.6805900,2000000000,10\n");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(w.status()),
              HasSubstr("t.csv:2: prompt 2000000000 + output 10 tokens exceeds the limit of "
                        "16777216 tokens per request"));
  // The sum counts, in 64 bits: two lengths that each fit do not together.
  w = Parse("t.csv", std::string(kAzureHeader) + "2023-11-16 18:15:46.6805900,16777216,1\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("exceeds the limit"));
  w = Parse("t.csv", std::string(kAzureHeader) +
                         "2023-11-16 18:15:46.6805900,9223372036854775807,9223372036854775807\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("exceeds the limit"));
  WorkloadOptions skip;
  skip.skip_bad_lines = true;
  w = Parse("t.csv",
            std::string(kAzureHeader) + "2023-11-16 18:15:46.6805900,2000000000,10\n" +
                "2023-11-16 18:15:47.6805900,100,10\n",
            skip);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->requests.size(), 1u);
  EXPECT_EQ(w->skipped_lines, 1);
  w = Parse("s.csv", "num_prefill_tokens,num_decode_tokens\n10,16777215\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("s.csv:2: prompt 10 + output 16777215"));
}

TEST(TraceLimitsTest, MooncakeLengthsBeyondInt64DoNotWrap) {
  // 1e30 used to become a 1-token prompt.
  absl::StatusOr<Workload> w =
      Parse("m.jsonl", "{\"timestamp\": 1, \"input_length\": 1e30, \"output_length\": 5}\n");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(w.status()), HasSubstr("m.jsonl:1: input_length 1e+30"));
  EXPECT_THAT(Msg(w.status()), HasSubstr("at most 16777216 tokens"));
  w = Parse("m.jsonl", "{\"timestamp\": 1, \"input_length\": -1e30, \"output_length\": 5}\n");
  ASSERT_TRUE(w.ok()) << w.status();  // negative: raised to 1 and counted, as documented
  EXPECT_EQ(w->clamped_prompt_tokens, 1);
  // Far more hash ids than any prompt can use.
  std::string ids;
  for (int i = 0; i < 40000; ++i) ids += (i ? "," : "") + std::to_string(i);
  w = Parse("m.jsonl",
            "{\"timestamp\": 1, \"input_length\": 10, \"output_length\": 5, "
            "\"hash_ids\": [" +
                ids + "]}\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("\"hash_ids\" must be an array of at most 32769"));
  // A deeply nested line is a malformed line, not a crash.
  w = Parse("m.jsonl", std::string(100000, '[') + "\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("m.jsonl:1: not a JSON object"));
}

TEST(TraceLimitsTest, AByteOrderMarkBeforeTheHeaderIsAccepted) {
  absl::StatusOr<Workload> w = Parse("bom.csv", "\xEF\xBB\xBF" + std::string(kAzureHeader) +
                                                    "2023-11-16 18:15:46.6805900,100,7\n");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->requests.size(), 1u);
  w = Parse("bom_sharegpt.csv", "\xEF\xBB\xBFnum_prefill_tokens,num_decode_tokens\n5,6\n");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->requests[0].prompt_tokens, 5);
}

TEST(TraceLimitsTest, ErrorsQuoteAnExcerptOfALongLine) {
  const std::string junk(1 << 20, 'x');
  absl::StatusOr<Workload> w = Parse("t.csv", std::string(kAzureHeader) + junk + "\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("expected 3 fields, got 1: 'xxxx"));
  EXPECT_LT(Msg(w.status()).size(), 400u);
  w = Parse("t.csv", junk + "\n");
  EXPECT_THAT(Msg(w.status()), HasSubstr("cannot tell the format"));
  EXPECT_LT(Msg(w.status()).size(), 800u);
}

TEST(TraceLimitsTest, NonRegularTraceFilesAreRefused) {
  EXPECT_THAT(Msg(LoadTraceFile("/dev/zero", {}).status()), HasSubstr("is a character device"));
  EXPECT_THAT(Msg(LoadTraceFile(::testing::TempDir(), {}).status()), HasSubstr("is a directory"));
}

TEST(SyntheticLimitsTest, CountsAndLengthsAreCappedWithTheLimitStated) {
  // synthetic:n=1e9 used to end in std::bad_alloc.
  EXPECT_THAT(Msg(LoadWorkload("synthetic:n=1000000000").status()),
              HasSubstr("an integer in [1, 10000000] (the limit of one workload)"));
  EXPECT_THAT(Msg(LoadWorkload("synthetic:n=10,prompt=fixed:2147483647").status()),
              HasSubstr("fixed:<tokens in [1, 16777216]>"));
  EXPECT_THAT(Msg(LoadWorkload("synthetic:n=10,prompt=uniform:1:20000000").status()),
              HasSubstr("at most 16777216 tokens"));
  EXPECT_THAT(
      Msg(LoadWorkload("synthetic:n=10,prompt=fixed:16000000,prefix_groups=2:1000000").status()),
      HasSubstr("exceed the limit of 16777216 tokens per request"));
  EXPECT_THAT(Msg(LoadWorkload("synthetic:n=10,samples=2000").status()),
              HasSubstr("an integer in [1, 1024]"));
  SyntheticSpec spec;
  spec.num_requests = kMaxWorkloadRequests + 1;
  EXPECT_THAT(Msg(GenerateSynthetic(spec).status()), HasSubstr("outside [1, 10000000]"));
  // Arrivals that overflow to infinity are caught by the final validation.
  absl::StatusOr<Workload> w = LoadWorkload("synthetic:n=3,rate=1e-308", {.rate_scale = 1e-10});
  EXPECT_THAT(Msg(w.status()), HasSubstr("must be finite"));
  EXPECT_TRUE(LoadWorkload("synthetic:n=5,prompt=fixed:16777000,output=fixed:216").ok());
}

TEST(ReportDataLimitsTest, DeepOrLongSummaryValuesAreErrorsWithExcerpts) {
  const std::string deep = "{\"policies\": " + std::string(100000, '[') + "}";
  absl::StatusOr<internal::ReportSummary> s = internal::ParseReportSummary(deep, "summary.json");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s.status()), HasSubstr("summary.json: JSON nested deeper than 64 levels"));
  const std::string long_value(1 << 20, 'q');
  s = internal::ParseReportSummary(
      "{\"policies\": [{\"policy\": \"paged\", \"ttft_p50_s\": \"" + long_value + "\"}]}",
      "summary.json");
  EXPECT_THAT(Msg(s.status()), HasSubstr("ttft_p50_s is \"qqqq"));
  EXPECT_LT(Msg(s.status()).size(), 300u);
  absl::StatusOr<std::vector<internal::TimelineSeries>> t = internal::ParseTimelineCsv(
      "policy,time_s,running,capacity_tokens,used_tokens\npaged," + long_value + ",1,1,1\n",
      "timeline.csv");
  EXPECT_THAT(Msg(t.status()), HasSubstr("timeline.csv:2: column time_s: 'qqqq"));
  EXPECT_LT(Msg(t.status()).size(), 300u);
}

TEST(WorkloadValidateTest, LimitsAreChecked) {
  Workload w;
  w.name = "w";
  Request r;
  r.prompt_tokens = 16777216;
  r.output_tokens = 1;
  w.requests.push_back(r);
  EXPECT_THAT(Msg(w.Validate()), HasSubstr("must be <= 16777216 (the limit per request)"));
  w.requests[0].prompt_tokens = 10;
  w.requests[0].beam_width = 2;
  w.requests[0].num_samples = 2;
  EXPECT_THAT(Msg(w.Validate()), HasSubstr("n or beams, not both"));
  w.requests[0].num_samples = 1;
  EXPECT_TRUE(w.Validate().ok());
}

}  // namespace
}  // namespace pagedkv
