// Synthetic workloads: seeded, deterministic request streams with Poisson or bursty (gamma)
// arrivals, fixed / uniform / lognormal / empirical lengths, shared-prefix groups, n and beams.
// The CLI spelling is a compact spec string (grammar in docs/traces.md):
//
//   PAGEDKV_ASSIGN_OR_RETURN(SyntheticSpec s, ParseSyntheticSpec(
//       "synthetic:rate=5,n=1000,prompt=lognormal:1000:0.8,output=fixed:200,prefix_groups=4:512"));
//   PAGEDKV_ASSIGN_OR_RETURN(Workload w, GenerateSynthetic(s));
#ifndef PAGEDKV_SCHEDULER_SYNTHETIC_H_
#define PAGEDKV_SCHEDULER_SYNTHETIC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv {

// A distribution of token counts. Samples are rounded and clamped to [1, max_tokens] (uniform and
// lognormal; a fixed value and a trace's lengths are used as they are, within kMaxRequestTokens).
struct LengthDistribution {
  enum class Kind { kFixed, kUniform, kLognormal, kEmpirical };
  Kind kind = Kind::kFixed;
  double a = 1;  // fixed: the value; uniform: lo (inclusive); lognormal: mean of the distribution
  double b = 0;  // uniform: hi (inclusive); lognormal: sigma of the underlying normal
  int32_t max_tokens = 1 << 20;
  // Empirical: resample from a trace's lengths (prompt lengths for `prompt=`, output lengths for
  // `output=`). `trace` is a short name or path; GenerateSynthetic fills `values` from it when
  // empty.
  std::string trace;
  std::vector<int32_t> values;

  // "fixed:200", "uniform:10:100", "lognormal:1000:0.8", "empirical:azure-conv"
  std::string ToString() const;
};
// Parses the spellings above (a bare integer means fixed). lognormal and uniform accept an
// optional last ":max" cap. InvalidArgument naming the text and the grammar.
absl::StatusOr<LengthDistribution> ParseLengthDistribution(std::string_view text);

struct ArrivalProcess {
  enum class Kind { kPoisson, kGamma };
  Kind kind = Kind::kPoisson;
  double rate_per_s = 5.0;  // mean arrival rate, > 0
  // Gamma only: coefficient of variation of the inter-arrival gaps (shape = 1 / cv^2). cv = 1 is
  // Poisson; cv > 1 is bursty (many short gaps, a few long ones).
  double cv = 1.0;
};

struct SyntheticSpec {
  int64_t num_requests = 1000;
  ArrivalProcess arrivals;
  LengthDistribution prompt{LengthDistribution::Kind::kFixed, 512};
  LengthDistribution output{LengthDistribution::Kind::kFixed, 128};
  // Shared prefixes: each request joins one of prefix_groups groups (uniformly at random) and its
  // prompt starts with that group's prefix_tokens tokens, followed by a sampled-length suffix.
  // 0 groups = no shared prefixes.
  int32_t prefix_groups = 0;
  int32_t prefix_tokens = 0;
  int32_t num_samples = 1;  // n per request (parallel sampling)
  int32_t beam_width = 1;   // beam search width
  uint64_t seed = 1;

  // The canonical spec string; ParseSyntheticSpec(ToString()) gives back an equal spec.
  std::string ToString() const;
};

// True when `spec` starts with "synthetic" (":..." or nothing: all defaults).
bool IsSyntheticSpec(std::string_view spec);

// Parses "synthetic:key=value,key=value,..." (the "synthetic:" prefix is optional). Keys: n, rate,
// arrival (poisson | gamma:<cv>), prompt, output (length distributions), prefix_groups
// (<k>:<tokens>), samples, beam, seed. InvalidArgument naming the bad key or value.
absl::StatusOr<SyntheticSpec> ParseSyntheticSpec(std::string_view spec);

// Generates the workload (deterministic for a spec; options.rate_scale and max_requests apply as
// for traces; options.traces_dir is used to resolve empirical traces).
absl::StatusOr<Workload> GenerateSynthetic(const SyntheticSpec& spec,
                                           const WorkloadOptions& options = {});

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_SYNTHETIC_H_
