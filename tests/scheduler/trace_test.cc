#include "pagedkv/scheduler/trace.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv {
namespace {

std::string TestData(const std::string& name) {
  return std::string(PAGEDKV_TEST_DATA_DIR) + "/" + name;
}

bool Contains(const absl::Status& s, const std::string& needle) {
  return std::string(s.message()).find(needle) != std::string::npos;
}

TEST(AzureTraceTest, ParsesTimestampsAcrossMidnightAndClampsLengths) {
  absl::StatusOr<Workload> w = LoadAzureTrace(TestData("azure_small.csv"), {});
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->requests.size(), 4u);
  EXPECT_DOUBLE_EQ(w->requests[0].arrival_time_s, 0.0);
  EXPECT_NEAR(w->requests[1].arrival_time_s, 0.4999999, 1e-9);  // 100 ns resolution kept
  EXPECT_NEAR(w->requests[2].arrival_time_s, 1.25, 1e-9);       // across midnight
  EXPECT_NEAR(w->requests[3].arrival_time_s, 3.0, 1e-9);        // short fraction ".5"
  EXPECT_EQ(w->requests[0].prompt_tokens, 100);
  EXPECT_EQ(w->requests[0].output_tokens, 10);
  EXPECT_EQ(w->requests[1].output_tokens, 1);  // 0 clamped
  EXPECT_EQ(w->requests[2].prompt_tokens, 1);  // 0 clamped
  EXPECT_EQ(w->clamped_output_tokens, 1);
  EXPECT_EQ(w->clamped_prompt_tokens, 1);
  for (size_t i = 0; i < w->requests.size(); ++i) {
    EXPECT_EQ(w->requests[i].request_id, i);
    EXPECT_TRUE(w->requests[i].prefix_block_hashes.empty());
  }
  EXPECT_TRUE(w->Validate().ok());
}

TEST(AzureTraceTest, MalformedLineNamesFileAndLine) {
  absl::StatusOr<Workload> w = LoadAzureTrace(TestData("azure_bad.csv"), {});
  ASSERT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(w.status(), "azure_bad.csv:3:")) << w.status();
  EXPECT_TRUE(Contains(w.status(), "abc")) << w.status();
  EXPECT_TRUE(Contains(w.status(), "--skip-bad-lines")) << w.status();
}

TEST(AzureTraceTest, SkipBadLinesCountsThem) {
  WorkloadOptions options;
  options.skip_bad_lines = true;
  absl::StatusOr<Workload> w = LoadAzureTrace(TestData("azure_bad.csv"), options);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->skipped_lines, 3);  // bad number, missing field, bad timestamp
  ASSERT_EQ(w->requests.size(), 3u);
  EXPECT_EQ(w->requests[2].prompt_tokens, 10);
  EXPECT_NEAR(w->requests[2].arrival_time_s, 50.0 - 46.68059, 1e-9);
}

TEST(MooncakeTraceTest, ParsesFieldsInAnyOrderAndKeepsHashes) {
  absl::StatusOr<Workload> w = LoadMooncakeTrace(TestData("mooncake_small.jsonl"), {});
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->requests.size(), 4u);
  EXPECT_EQ(w->requests[0].prefix_block_hashes, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(w->requests[0].hash_block_tokens, kMooncakeHashBlockTokens);
  EXPECT_NEAR(w->requests[1].arrival_time_s, 0.5, 1e-12);
  EXPECT_EQ(w->requests[2].prefix_block_hashes, (std::vector<uint64_t>{3}));
  EXPECT_EQ(w->requests[2].output_tokens, 1);
  EXPECT_EQ(w->clamped_output_tokens, 1);
  EXPECT_NEAR(w->requests[3].arrival_time_s, 2.0, 1e-12);
  EXPECT_TRUE(w->requests[3].prefix_block_hashes.empty());
  EXPECT_EQ(w->requests[3].hash_block_tokens, 0);
  EXPECT_TRUE(w->Validate().ok()) << w->Validate();
}

TEST(MooncakeTraceTest, MalformedLinesErrorOrSkip) {
  absl::StatusOr<Workload> w = LoadMooncakeTrace(TestData("mooncake_bad.jsonl"), {});
  ASSERT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(w.status(), "mooncake_bad.jsonl:2:")) << w.status();

  WorkloadOptions options;
  options.skip_bad_lines = true;
  w = LoadMooncakeTrace(TestData("mooncake_bad.jsonl"), options);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->skipped_lines, 3);
  EXPECT_EQ(w->requests.size(), 2u);
}

TEST(ShareGptTraceTest, PoissonArrivalsAreSeededAndLengthsClamped) {
  WorkloadOptions options;
  options.poisson_rate_per_s = 2.0;
  options.seed = 7;
  absl::StatusOr<Workload> a = LoadShareGptTrace(TestData("sharegpt_small.csv"), options);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->requests.size(), 3u);
  EXPECT_EQ(a->requests[0].prompt_tokens, 74);
  EXPECT_EQ(a->requests[0].output_tokens, 918);
  EXPECT_EQ(a->requests[2].output_tokens, 1);
  EXPECT_EQ(a->clamped_output_tokens, 1);
  EXPECT_EQ(a->requests[0].arrival_time_s, 0.0);
  EXPECT_GT(a->requests[2].arrival_time_s, a->requests[1].arrival_time_s);
  absl::StatusOr<Workload> b = LoadShareGptTrace(TestData("sharegpt_small.csv"), options);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->requests[2].arrival_time_s, b->requests[2].arrival_time_s);
  options.seed = 8;
  absl::StatusOr<Workload> c = LoadShareGptTrace(TestData("sharegpt_small.csv"), options);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->requests[2].arrival_time_s, c->requests[2].arrival_time_s);
}

TEST(ShareGptTraceTest, BadLine) {
  absl::StatusOr<Workload> w = LoadShareGptTrace(TestData("sharegpt_bad.csv"), {});
  EXPECT_TRUE(Contains(w.status(), "sharegpt_bad.csv:3:")) << w.status();
  WorkloadOptions options;
  options.skip_bad_lines = true;
  w = LoadShareGptTrace(TestData("sharegpt_bad.csv"), options);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->skipped_lines, 1);
  EXPECT_EQ(w->requests.size(), 2u);
}

TEST(TraceFormatTest, SniffsEachFormatAndRejectsUnknown) {
  EXPECT_EQ(*SniffTraceFormat(TestData("azure_small.csv")), TraceFormat::kAzureCsv);
  EXPECT_EQ(*SniffTraceFormat(TestData("mooncake_small.jsonl")), TraceFormat::kMooncakeJsonl);
  EXPECT_EQ(*SniffTraceFormat(TestData("sharegpt_small.csv")), TraceFormat::kShareGptCsv);
  absl::StatusOr<TraceFormat> f = SniffTraceFormat(TestData("unknown_format.csv"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(f.status(), "something,else")) << f.status();
  EXPECT_EQ(SniffTraceFormat(TestData("no_such_file.csv")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TraceFormatTest, UnknownNameListsShortNames) {
  absl::StatusOr<std::string> p = ResolveTracePath("azure-convo");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(p.status(), "azure-conv")) << p.status();
  EXPECT_TRUE(Contains(p.status(), "mooncake")) << p.status();
}

TEST(TraceFormatTest, BadOptionsAreInvalidArgument) {
  WorkloadOptions options;
  options.rate_scale = 0;
  EXPECT_EQ(LoadAzureTrace(TestData("azure_small.csv"), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.rate_scale = 1;
  options.max_requests = -1;
  EXPECT_EQ(LoadAzureTrace(TestData("azure_small.csv"), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

struct VendoredCase {
  const char* name;
  size_t rows;
};

class VendoredTraceTest : public ::testing::TestWithParam<VendoredCase> {};

TEST_P(VendoredTraceTest, RowCountsMonotoneArrivalsAndRateScale) {
  absl::StatusOr<Workload> w = LoadWorkload(GetParam().name);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->name, GetParam().name);
  EXPECT_EQ(w->requests.size(), GetParam().rows);
  EXPECT_EQ(w->skipped_lines, 0);
  EXPECT_TRUE(w->Validate().ok()) << w->Validate();
  EXPECT_TRUE(std::is_sorted(
      w->requests.begin(), w->requests.end(),
      [](const Request& a, const Request& b) { return a.arrival_time_s < b.arrival_time_s; }));
  EXPECT_EQ(w->requests.front().arrival_time_s, 0.0);
  EXPECT_GT(w->ArrivalSpanSeconds(), 100.0);

  WorkloadOptions fast;
  fast.rate_scale = 2.0;
  absl::StatusOr<Workload> f = LoadWorkload(GetParam().name, fast);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->requests.size(), w->requests.size());
  EXPECT_NEAR(f->ArrivalSpanSeconds(), w->ArrivalSpanSeconds() / 2, 1e-6);
  EXPECT_EQ(f->TotalPromptTokens(), w->TotalPromptTokens());

  WorkloadOptions few;
  few.max_requests = 100;
  absl::StatusOr<Workload> s = LoadWorkload(GetParam().name, few);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->requests.size(), 100u);
  EXPECT_EQ(s->requests[99].arrival_time_s, w->requests[99].arrival_time_s);
}

INSTANTIATE_TEST_SUITE_P(Traces, VendoredTraceTest,
                         ::testing::Values(VendoredCase{"azure-conv", 19366},
                                           VendoredCase{"azure-code", 8819},
                                           VendoredCase{"mooncake", 3993},
                                           VendoredCase{"sharegpt", 30731}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(VendoredTraceShapeTest, MooncakeHashesRepeatAcrossRequests) {
  absl::StatusOr<Workload> w = LoadWorkload("mooncake");
  ASSERT_TRUE(w.ok()) << w.status();
  int64_t blocks = 0;
  int64_t with_hashes = 0;
  for (const Request& r : w->requests) {
    blocks += static_cast<int64_t>(r.prefix_block_hashes.size());
    with_hashes += !r.prefix_block_hashes.empty();
    // Hashes cover the prompt: ceil(prompt / 512) of them.
    if (!r.prefix_block_hashes.empty()) {
      EXPECT_EQ(static_cast<int64_t>(r.prefix_block_hashes.size()),
                (r.prompt_tokens + kMooncakeHashBlockTokens - 1) / kMooncakeHashBlockTokens)
          << "request " << r.request_id;
    }
  }
  EXPECT_EQ(with_hashes, 3993);
  EXPECT_GT(blocks, 100000);
}

}  // namespace
}  // namespace pagedkv
