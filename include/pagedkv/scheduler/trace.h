// Trace loaders: real request traces (Azure LLM inference 2023 conv/code CSV, Mooncake synthetic
// JSONL, ShareGPT lengths CSV) read into a Workload. Most callers use LoadWorkload (workload.h),
// which resolves short names; these are the per-format entry points behind it.
//
//   PAGEDKV_ASSIGN_OR_RETURN(Workload w, LoadTraceFile("my_trace.csv", {.skip_bad_lines = true}));
#ifndef PAGEDKV_SCHEDULER_TRACE_H_
#define PAGEDKV_SCHEDULER_TRACE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv {

enum class TraceFormat {
  kAzureCsv,       // TIMESTAMP,ContextTokens,GeneratedTokens (wall clock, 100 ns resolution)
  kMooncakeJsonl,  // {"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}
  kShareGptCsv,    // num_prefill_tokens,num_decode_tokens[,...] (lengths only, no arrivals)
};
std::string_view TraceFormatName(TraceFormat format);  // "azure-csv", "mooncake-jsonl", ...

// Native granularity of Mooncake hash_ids: one id per 512 prompt tokens.
inline constexpr int32_t kMooncakeHashBlockTokens = 512;

// Format of a trace file from its extension (.jsonl) and header line. InvalidArgument naming the
// file and the header seen when it is none of the above.
absl::StatusOr<TraceFormat> SniffTraceFormat(const std::string& path);

// The path of a vendored trace for a short name ("azure-conv", "azure-code", "mooncake",
// "sharegpt"), or `name_or_path` itself when it is not a short name. NotFound (listing the short
// names) when the result does not exist.
absl::StatusOr<std::string> ResolveTracePath(std::string_view name_or_path,
                                             const WorkloadOptions& options = {});

// Per-format loaders. Every loader: requests sorted by arrival (stable), ids 0..n-1, arrival times
// relative to the first request and divided by options.rate_scale, then cut to max_requests.
// Lengths below 1 are raised to 1 and counted (Workload::clamped_*). A malformed line is an
// InvalidArgument "path:line: what was wrong", or is skipped and counted under skip_bad_lines.
absl::StatusOr<Workload> LoadAzureTrace(const std::string& path, const WorkloadOptions& options);
absl::StatusOr<Workload> LoadMooncakeTrace(const std::string& path, const WorkloadOptions& options);
// Arrivals: a Poisson process at options.poisson_rate_per_s seeded with options.seed.
absl::StatusOr<Workload> LoadShareGptTrace(const std::string& path, const WorkloadOptions& options);
// Sniffs the format, then calls the loader above.
absl::StatusOr<Workload> LoadTraceFile(const std::string& path, const WorkloadOptions& options);

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_TRACE_H_
