// Workload: the requests a simulation replays (arrival time, prompt and output lengths, optional
// prefix block hashes, n / beam width), from a vendored trace, a trace file or a synthetic spec.
//
//   PAGEDKV_ASSIGN_OR_RETURN(Workload w, LoadWorkload("azure-conv", {.rate_scale = 2.0}));
//   std::vector<TokenId> ids = PromptTokenIds(w.requests[0], /*block_size_tokens=*/16);
#ifndef PAGEDKV_SCHEDULER_WORKLOAD_H_
#define PAGEDKV_SCHEDULER_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

// Limits every workload source enforces when it loads or generates requests (lengths in 64-bit,
// before any prompt is materialised), and Workload::Validate checks:
inline constexpr int64_t kMaxRequestTokens = int64_t{1} << 24;  // prompt + output of one request
inline constexpr int64_t kMaxWorkloadRequests = 10'000'000;     // requests of one workload
inline constexpr int32_t kMaxRequestWidth = 1024;               // num_samples and beam_width

// One request of a workload. Invariants (Workload::Validate checks them): prompt_tokens >= 1,
// output_tokens >= 1, prompt_tokens + output_tokens <= kMaxRequestTokens, num_samples and
// beam_width in [1, kMaxRequestWidth], hash_block_tokens > 0 exactly when prefix_block_hashes is
// non-empty.
struct Request {
  uint64_t request_id = 0;    // unique, in arrival order (0, 1, 2, ... for loaded workloads)
  double arrival_time_s = 0;  // seconds from the start of the workload, non-decreasing
  int32_t prompt_tokens = 1;  // >= 1
  int32_t output_tokens = 1;  // >= 1 (tokens to generate per sequence)
  // Optional content ids of the prompt's leading blocks at the workload's native granularity
  // (hash_block_tokens tokens each; the last one may be partial). Equal ids = equal content, so
  // requests whose leading ids agree share that prefix. May cover less than the whole prompt.
  std::vector<uint64_t> prefix_block_hashes;
  int32_t hash_block_tokens = 0;  // 0 when no hashes (Mooncake: 512)
  int32_t num_samples = 1;        // n (parallel sampling)
  int32_t beam_width = 1;         // beam search width (1 = none)
};

struct Workload {
  std::string name;               // "azure-conv", "synthetic", or the file's stem
  std::vector<Request> requests;  // sorted by arrival_time_s, request_id = index
  std::string source;             // the path read or the generator spec

  // Counts kept by the loaders so that callers can report what was changed or dropped.
  int64_t clamped_prompt_tokens = 0;  // rows whose prompt length was raised to 1
  int64_t clamped_output_tokens = 0;  // rows whose output length was raised to 1
  int64_t skipped_lines = 0;          // malformed lines dropped under skip_bad_lines

  // InvalidArgument naming the first bad request (its id, field and value): the invariants of
  // Request, arrivals finite, >= 0 and sorted, ids increasing, at most kMaxWorkloadRequests.
  absl::Status Validate() const;
  // Span of arrivals: last arrival - first arrival (0 for fewer than two requests).
  double ArrivalSpanSeconds() const;
  int64_t TotalPromptTokens() const;
  int64_t TotalOutputTokens() const;
};

// How a trace or generator is turned into a workload.
struct WorkloadOptions {
  // Arrival times are divided by this: 2.0 replays the trace twice as fast. > 0.
  double rate_scale = 1.0;
  // Keep only the first max_requests requests (in arrival order); 0 = all.
  int64_t max_requests = 0;
  // Drop malformed lines (counted in Workload::skipped_lines) instead of failing on the first.
  bool skip_bad_lines = false;
  // Traces without arrival times (ShareGPT lengths): Poisson arrivals at this rate (requests/s).
  double poisson_rate_per_s = 4.0;
  // Seed for any randomness a source needs (ShareGPT arrivals; synthetic specs carry their own).
  uint64_t seed = 1;
  // Directory holding the vendored traces; empty = the project's data/traces (compiled in),
  // overridable with the PAGEDKV_TRACES_DIR environment variable.
  std::string traces_dir;
};

// Loads a workload from `spec`:
//   - a short name of a vendored trace: "azure-conv", "azure-code", "mooncake", "sharegpt";
//   - a path to a trace file (format sniffed from the extension and header line);
//   - a synthetic generator spec "synthetic:key=value,..." (grammar in docs/traces.md).
// NotFound for an unknown name or missing file (listing the short names), InvalidArgument with
// "file:line: ..." for a malformed line (unless skip_bad_lines) or a bad spec / option, and
// InvalidArgument stating the limit for a request longer than kMaxRequestTokens or a workload of
// more than kMaxWorkloadRequests requests.
absl::StatusOr<Workload> LoadWorkload(std::string_view spec, const WorkloadOptions& options = {});

// The short names LoadWorkload accepts for vendored traces.
std::vector<std::string> VendoredTraceNames();

// Deterministic token ids for `request`'s prompt (prompt_tokens of them). Tokens covered by
// prefix_block_hashes get ids that depend only on (hash id, offset within the hashed block), so
// requests with equal leading hashes have equal leading token ids and share pages at ANY block
// size (a 512-token hash block becomes 512 / block_size child blocks). The remaining tokens start
// with an id unique to the request, so nothing after the hashed prefix is ever shared; requests
// without hashes share nothing. Ids lie in [0, 2^31). block_size_tokens (>= 1) does not change
// the ids; it is checked so that callers pass the size they simulate.
std::vector<TokenId> PromptTokenIds(const Request& request, int32_t block_size_tokens);

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_WORKLOAD_H_
