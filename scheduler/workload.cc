#include "pagedkv/scheduler/workload.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "internal/w_random.h"
#include "internal/w_workload_util.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/synthetic.h"
#include "pagedkv/scheduler/trace.h"

#ifndef PAGEDKV_DEFAULT_TRACES_DIR
#define PAGEDKV_DEFAULT_TRACES_DIR "data/traces"
#endif

namespace pagedkv {

static_assert(kMaxRequestWidth <= Scheduler::kMaxGroupWidth,
              "a workload's requests must be accepted by the scheduler");

absl::Status Workload::Validate() const {
  if (static_cast<int64_t>(requests.size()) > kMaxWorkloadRequests) {
    return absl::InvalidArgumentError(absl::StrCat("workload '", name, "' has ", requests.size(),
                                                   " requests, more than the limit of ",
                                                   kMaxWorkloadRequests));
  }
  double prev_arrival = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    auto bad = [&](std::string_view field, auto value, std::string_view rule) {
      return absl::InvalidArgumentError(absl::StrCat("workload '", name, "' request ", r.request_id,
                                                     " (index ", i, "): ", AbslView(field), " = ",
                                                     value, ", must be ", AbslView(rule)));
    };
    if (r.prompt_tokens < 1) return bad("prompt_tokens", r.prompt_tokens, ">= 1");
    if (r.output_tokens < 1) return bad("output_tokens", r.output_tokens, ">= 1");
    if (static_cast<int64_t>(r.prompt_tokens) + r.output_tokens > kMaxRequestTokens) {
      return bad("prompt_tokens + output_tokens",
                 static_cast<int64_t>(r.prompt_tokens) + r.output_tokens,
                 absl::StrCat("<= ", kMaxRequestTokens, " (the limit per request)"));
    }
    if (r.num_samples < 1 || r.num_samples > kMaxRequestWidth) {
      return bad("num_samples", r.num_samples, absl::StrCat("in [1, ", kMaxRequestWidth, "]"));
    }
    if (r.beam_width < 1 || r.beam_width > kMaxRequestWidth) {
      return bad("beam_width", r.beam_width, absl::StrCat("in [1, ", kMaxRequestWidth, "]"));
    }
    if (r.num_samples > 1 && r.beam_width > 1) {
      return bad("num_samples", r.num_samples, "1 when beam_width > 1 (n or beams, not both)");
    }
    if (!std::isfinite(r.arrival_time_s) || r.arrival_time_s < 0) {
      return bad("arrival_time_s", r.arrival_time_s, "finite and >= 0");
    }
    if (i > 0 && r.arrival_time_s < prev_arrival) {
      return bad("arrival_time_s", r.arrival_time_s,
                 absl::StrCat(">= the previous request's ", prev_arrival, " (sorted arrivals)"));
    }
    if (i > 0 && r.request_id <= requests[i - 1].request_id) {
      return bad("request_id", r.request_id, "greater than the previous request's id");
    }
    if (r.prefix_block_hashes.empty() != (r.hash_block_tokens == 0)) {
      return bad("hash_block_tokens", r.hash_block_tokens,
                 "> 0 exactly when prefix_block_hashes is non-empty");
    }
    if (r.hash_block_tokens < 0) return bad("hash_block_tokens", r.hash_block_tokens, ">= 0");
    prev_arrival = r.arrival_time_s;
  }
  return absl::OkStatus();
}

double Workload::ArrivalSpanSeconds() const {
  if (requests.size() < 2) return 0;
  return requests.back().arrival_time_s - requests.front().arrival_time_s;
}

int64_t Workload::TotalPromptTokens() const {
  int64_t total = 0;
  for (const Request& r : requests) total += r.prompt_tokens;
  return total;
}

int64_t Workload::TotalOutputTokens() const {
  int64_t total = 0;
  for (const Request& r : requests) total += r.output_tokens;
  return total;
}

namespace internal {

absl::Status ValidateWorkloadOptions(const WorkloadOptions& options) {
  if (!(options.rate_scale > 0) || !std::isfinite(options.rate_scale)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rate_scale = ", options.rate_scale,
        " must be a finite number > 0 (2.0 replays arrivals twice as fast, 0.5 half as fast)"));
  }
  if (options.max_requests < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_requests = ", options.max_requests, " must be >= 0 (0 = all)"));
  }
  if (!(options.poisson_rate_per_s > 0) || !std::isfinite(options.poisson_rate_per_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("poisson_rate_per_s = ", options.poisson_rate_per_s,
                     " must be a finite number > 0 (requests/s)"));
  }
  return absl::OkStatus();
}

void FinalizeWorkload(const WorkloadOptions& options, Workload* workload) {
  std::vector<Request>& reqs = workload->requests;
  std::stable_sort(reqs.begin(), reqs.end(), [](const Request& a, const Request& b) {
    return a.arrival_time_s < b.arrival_time_s;
  });
  if (options.max_requests > 0 && static_cast<int64_t>(reqs.size()) > options.max_requests) {
    reqs.resize(static_cast<size_t>(options.max_requests));
  }
  const double origin = reqs.empty() ? 0.0 : reqs.front().arrival_time_s;
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].request_id = i;
    reqs[i].arrival_time_s = (reqs[i].arrival_time_s - origin) / options.rate_scale;
  }
}

std::string TracesDir(const WorkloadOptions& options) {
  if (!options.traces_dir.empty()) return options.traces_dir;
  if (const char* env = std::getenv("PAGEDKV_TRACES_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return PAGEDKV_DEFAULT_TRACES_DIR;
}

}  // namespace internal

absl::StatusOr<Workload> LoadWorkload(std::string_view spec, const WorkloadOptions& options) {
  PAGEDKV_RETURN_IF_ERROR(internal::ValidateWorkloadOptions(options));
  if (IsSyntheticSpec(spec)) {
    absl::StatusOr<SyntheticSpec> parsed = ParseSyntheticSpec(spec);
    if (!parsed.ok()) return parsed.status();
    return GenerateSynthetic(*parsed, options);
  }
  absl::StatusOr<std::string> path = ResolveTracePath(spec, options);
  if (!path.ok()) return path.status();
  absl::StatusOr<Workload> workload = LoadTraceFile(*path, options);
  if (!workload.ok()) return workload.status();
  // A short name keeps its name; a path is named by its file name without extension.
  const std::vector<std::string> names = VendoredTraceNames();
  if (std::find(names.begin(), names.end(), spec) != names.end())
    workload->name = std::string(spec);
  return workload;
}

std::vector<std::string> VendoredTraceNames() {
  return {"azure-conv", "azure-code", "mooncake", "sharegpt"};
}

namespace {

// Token ids are split into two ranges so that the first token of every unshared stretch can be
// chosen injectively (no accidental sharing even at block size 1, where a block is one token):
//   [0, 2^30)        tokens of hashed blocks: (hash id, offset) -> id; offset 0 maps the hash id
//                    itself when it is < 2^30 (Mooncake and synthetic ids are small integers).
//   [2^30, 2^31)     request-private tokens: the first one is 2^30 + request_id mod 2^30.
constexpr uint64_t kHashedRange = uint64_t{1} << 30;

TokenId HashedTokenId(uint64_t hash_id, int64_t offset) {
  if (offset == 0 && hash_id < kHashedRange) return static_cast<TokenId>(hash_id);
  return static_cast<TokenId>(
      internal::Mix64(internal::Mix64(hash_id) ^ static_cast<uint64_t>(offset)) % kHashedRange);
}

TokenId PrivateTokenId(uint64_t request_id, int64_t position, bool first) {
  if (first) return static_cast<TokenId>(kHashedRange + request_id % kHashedRange);
  return static_cast<TokenId>(kHashedRange +
                              internal::Mix64(internal::Mix64(request_id ^ 0x5bd1e995ull) +
                                              static_cast<uint64_t>(position)) %
                                  kHashedRange);
}

}  // namespace

std::vector<TokenId> PromptTokenIds(const Request& request, int32_t block_size_tokens) {
  PAGEDKV_DCHECK_MSG(block_size_tokens >= 1, "PromptTokenIds: block_size_tokens must be >= 1");
  const int64_t num_tokens = std::max<int32_t>(request.prompt_tokens, 0);
  std::vector<TokenId> ids(static_cast<size_t>(num_tokens));
  int64_t hashed_tokens = 0;
  if (request.hash_block_tokens > 0) {
    hashed_tokens =
        std::min<int64_t>(num_tokens, static_cast<int64_t>(request.prefix_block_hashes.size()) *
                                          request.hash_block_tokens);
  }
  for (int64_t p = 0; p < hashed_tokens; ++p) {
    const uint64_t hash = request.prefix_block_hashes[p / request.hash_block_tokens];
    ids[p] = HashedTokenId(hash, p % request.hash_block_tokens);
  }
  for (int64_t p = hashed_tokens; p < num_tokens; ++p) {
    ids[p] = PrivateTokenId(request.request_id, p, p == hashed_tokens);
  }
  return ids;
}

}  // namespace pagedkv
