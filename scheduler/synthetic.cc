#include "pagedkv/scheduler/synthetic.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "internal/w_random.h"
#include "internal/w_text_file.h"
#include "internal/w_workload_util.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/input_limits.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/trace.h"

namespace pagedkv {
namespace {

constexpr char kSpecGrammar[] =
    "synthetic:n=<requests>,rate=<req/s>,arrival=poisson|gamma:<cv>,prompt=<dist>,"
    "output=<dist>,prefix_groups=<k>:<tokens>,samples=<n>,beam=<w>,seed=<u64> with <dist> one of "
    "fixed:<t> | uniform:<lo>:<hi>[:<max>] | lognormal:<mean>:<sigma>[:<max>] | "
    "empirical:<trace>";

// The shortest text that parses back to exactly `v` (ToString must round-trip).
std::string FormatNumber(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : absl::StrFormat("%.17g", v);
}

// Token counts are whole numbers: never in exponent notation, which the count parser refuses.
std::string FormatCount(double v) { return absl::StrCat(static_cast<int64_t>(std::llround(v))); }

absl::Status BadSpec(std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("synthetic spec: ", AbslView(what), "; grammar: ", kSpecGrammar));
}

bool ParseCount(std::string_view text, int64_t lo, int64_t hi, int64_t* out) {
  return internal::ParseInt64(text, out) && *out >= lo && *out <= hi;
}

bool ParsePositive(std::string_view text, double* out) {
  return internal::ParseDouble(text, out) && std::isfinite(*out) && *out > 0;
}

int32_t RoundClamp(double v, int32_t max_tokens) {
  if (!(v >= 1)) return 1;  // also catches NaN
  if (v >= max_tokens) return max_tokens;
  return static_cast<int32_t>(std::llround(v));
}

int32_t Sample(const LengthDistribution& d, internal::Rng& rng) {
  switch (d.kind) {
    case LengthDistribution::Kind::kFixed:  // the value as given (no cap: it is not sampled)
      return RoundClamp(d.a, static_cast<int32_t>(kMaxRequestTokens));
    case LengthDistribution::Kind::kUniform: {
      const int64_t lo = static_cast<int64_t>(d.a), hi = static_cast<int64_t>(d.b);
      return RoundClamp(static_cast<double>(lo + static_cast<int64_t>(rng.Below(hi - lo + 1))),
                        d.max_tokens);
    }
    case LengthDistribution::Kind::kLognormal: {
      // a is the mean of the lognormal itself: mu = ln(mean) - sigma^2 / 2.
      const double mu = std::log(d.a) - 0.5 * d.b * d.b;
      return RoundClamp(std::exp(mu + d.b * rng.Normal()), d.max_tokens);
    }
    case LengthDistribution::Kind::kEmpirical:  // the trace's lengths as they are
      PAGEDKV_DCHECK(!d.values.empty());
      return RoundClamp(d.values[rng.Below(d.values.size())],
                        static_cast<int32_t>(kMaxRequestTokens));
  }
  return 1;
}

// The largest value Sample() can return for `d` (after FillEmpirical).
int64_t MaxLength(const LengthDistribution& d) {
  switch (d.kind) {
    case LengthDistribution::Kind::kFixed:
      return std::clamp<int64_t>(std::llround(std::min(d.a, 1e18)), 1, kMaxRequestTokens);
    case LengthDistribution::Kind::kUniform:
      return std::clamp<int64_t>(static_cast<int64_t>(std::min(d.b, 1e18)), 1, d.max_tokens);
    case LengthDistribution::Kind::kLognormal:
      return d.max_tokens;
    case LengthDistribution::Kind::kEmpirical: {
      int64_t most = 1;
      for (int32_t v : d.values) most = std::max<int64_t>(most, v);
      return std::min<int64_t>(most, kMaxRequestTokens);
    }
  }
  return d.max_tokens;
}

absl::Status FillEmpirical(LengthDistribution* d, bool prompt_lengths,
                           const WorkloadOptions& options) {
  if (d->kind != LengthDistribution::Kind::kEmpirical || !d->values.empty()) {
    return absl::OkStatus();
  }
  WorkloadOptions load = options;
  load.max_requests = 0;
  load.rate_scale = 1.0;
  absl::StatusOr<std::string> path = ResolveTracePath(d->trace, load);
  if (!path.ok()) return path.status();
  absl::StatusOr<Workload> w = LoadTraceFile(*path, load);
  if (!w.ok()) return w.status();
  if (w->requests.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("empirical lengths: trace '", d->trace, "' has no requests"));
  }
  d->values.reserve(w->requests.size());
  for (const Request& r : w->requests) {
    d->values.push_back(prompt_lengths ? r.prompt_tokens : r.output_tokens);
  }
  return absl::OkStatus();
}

}  // namespace

std::string LengthDistribution::ToString() const {
  std::string cap = max_tokens == (1 << 20) ? "" : absl::StrCat(":", max_tokens);
  switch (kind) {
    case Kind::kFixed:
      return absl::StrCat("fixed:", FormatCount(a));
    case Kind::kUniform:
      return absl::StrCat("uniform:", FormatCount(a), ":", FormatCount(b), cap);
    case Kind::kLognormal:
      return absl::StrCat("lognormal:", FormatNumber(a), ":", FormatNumber(b), cap);
    case Kind::kEmpirical:
      return absl::StrCat("empirical:", trace);
  }
  return "";
}

absl::StatusOr<LengthDistribution> ParseLengthDistribution(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(AbslView(text), ':');
  LengthDistribution d;
  auto bad = [&](std::string_view why) {
    return BadSpec(absl::StrCat("length distribution '", Excerpt(text, 60), "': ", AbslView(why)));
  };
  const std::string kind = absl::AsciiStrToLower(parts[0]);
  int64_t count;
  if (parts.size() == 1 && ParseCount(parts[0], 1, kMaxRequestTokens, &count)) {
    d.a = static_cast<double>(count);
    return d;
  }
  auto parse_cap = [&](size_t index) -> bool {
    if (parts.size() <= index) return true;
    int64_t cap;
    if (!ParseCount(parts[index], 1, kMaxRequestTokens, &cap)) return false;
    d.max_tokens = static_cast<int32_t>(cap);
    return true;
  };
  if (kind == "fixed") {
    if (parts.size() != 2 || !ParseCount(parts[1], 1, kMaxRequestTokens, &count)) {
      return bad(absl::StrCat("expected fixed:<tokens in [1, ", kMaxRequestTokens, "]>"));
    }
    d.a = static_cast<double>(count);
  } else if (kind == "uniform") {
    int64_t lo, hi;
    if (parts.size() < 3 || parts.size() > 4 || !ParseCount(parts[1], 1, kMaxRequestTokens, &lo) ||
        !ParseCount(parts[2], lo, kMaxRequestTokens, &hi) || !parse_cap(3)) {
      return bad(absl::StrCat("expected uniform:<lo >= 1>:<hi >= lo>[:<max>], at most ",
                              kMaxRequestTokens, " tokens"));
    }
    d.kind = LengthDistribution::Kind::kUniform;
    d.a = static_cast<double>(lo);
    d.b = static_cast<double>(hi);
    // Without an explicit cap every value up to hi is drawn (the default cap would silently cut
    // a wider range).
    if (parts.size() == 3) d.max_tokens = std::max<int32_t>(d.max_tokens, static_cast<int32_t>(hi));
  } else if (kind == "lognormal") {
    d.kind = LengthDistribution::Kind::kLognormal;
    if (parts.size() < 3 || parts.size() > 4 || !ParsePositive(parts[1], &d.a) ||
        !internal::ParseDouble(parts[2], &d.b) || !(d.b >= 0) || d.b > 5 || !parse_cap(3)) {
      return bad(
          absl::StrCat("expected lognormal:<mean tokens > 0>:<sigma in [0, 5]>[:<max>], "
                       "a max of at most ",
                       kMaxRequestTokens, " tokens"));
    }
  } else if (kind == "empirical") {
    if (parts.size() < 2 || parts[1].empty()) {
      return bad("expected empirical:<trace name or path>");
    }
    d.kind = LengthDistribution::Kind::kEmpirical;
    // A path may itself contain ':'; rejoin the rest.
    d.trace = std::string(text.substr(text.find(':') + 1));
  } else {
    return bad("unknown kind, use fixed, uniform, lognormal or empirical");
  }
  return d;
}

std::string SyntheticSpec::ToString() const {
  std::string s =
      absl::StrCat("synthetic:n=", num_requests, ",rate=", FormatNumber(arrivals.rate_per_s));
  if (arrivals.kind == ArrivalProcess::Kind::kGamma) {
    absl::StrAppend(&s, ",arrival=gamma:", FormatNumber(arrivals.cv));
  }
  absl::StrAppend(&s, ",prompt=", prompt.ToString(), ",output=", output.ToString());
  if (prefix_groups > 0) absl::StrAppend(&s, ",prefix_groups=", prefix_groups, ":", prefix_tokens);
  if (num_samples != 1) absl::StrAppend(&s, ",samples=", num_samples);
  if (beam_width != 1) absl::StrAppend(&s, ",beam=", beam_width);
  absl::StrAppend(&s, ",seed=", seed);
  return s;
}

bool IsSyntheticSpec(std::string_view spec) {
  return spec == "synthetic" || absl::StartsWith(AbslView(spec), "synthetic:");
}

absl::StatusOr<SyntheticSpec> ParseSyntheticSpec(std::string_view text) {
  std::string_view body = text;
  if (absl::StartsWith(AbslView(body), "synthetic")) {
    body.remove_prefix(9);
    if (!body.empty()) {
      if (body.front() != ':') return BadSpec(absl::StrCat("'", Excerpt(text, 60), "'"));
      body.remove_prefix(1);
    }
  }
  SyntheticSpec spec;
  if (body.empty()) return spec;
  for (absl::string_view item : absl::StrSplit(AbslView(body), ',')) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return BadSpec(absl::StrCat("item '", Excerpt(StdView(item), 60), "' is not key=value"));
    }
    const std::string key = absl::AsciiStrToLower(item.substr(0, eq));
    const std::string_view value = StdView(item.substr(eq + 1));
    auto bad_value = [&](std::string_view expected) {
      return BadSpec(absl::StrCat("bad value '", Excerpt(value, 60), "' for ", Excerpt(key, 20),
                                  ": expected ", AbslView(expected)));
    };
    int64_t count;
    if (key == "n" || key == "requests") {
      if (!ParseCount(value, 1, kMaxWorkloadRequests, &count)) {
        return bad_value(absl::StrCat("an integer in [1, ", kMaxWorkloadRequests,
                                      "] (the limit of one workload)"));
      }
      spec.num_requests = count;
    } else if (key == "rate") {
      if (!ParsePositive(value, &spec.arrivals.rate_per_s)) return bad_value("a number > 0");
    } else if (key == "arrival" || key == "arrivals") {
      std::vector<std::string> parts = absl::StrSplit(AbslView(value), ':');
      if (parts.size() == 1 && absl::AsciiStrToLower(parts[0]) == "poisson") {
        spec.arrivals.kind = ArrivalProcess::Kind::kPoisson;
        spec.arrivals.cv = 1.0;
      } else if (parts.size() == 2 && absl::AsciiStrToLower(parts[0]) == "gamma" &&
                 ParsePositive(parts[1], &spec.arrivals.cv) && spec.arrivals.cv <= 100) {
        spec.arrivals.kind = ArrivalProcess::Kind::kGamma;
      } else {
        return bad_value("poisson or gamma:<cv in (0, 100]>");
      }
    } else if (key == "prompt" || key == "output") {
      PAGEDKV_ASSIGN_OR_RETURN(LengthDistribution d, ParseLengthDistribution(value));
      (key == "prompt" ? spec.prompt : spec.output) = std::move(d);
    } else if (key == "prefix_groups") {
      std::vector<std::string> parts = absl::StrSplit(AbslView(value), ':');
      int64_t groups, tokens;
      if (parts.size() != 2 || !ParseCount(parts[0], 0, 1 << 20, &groups) ||
          !ParseCount(parts[1], 0, kMaxRequestTokens, &tokens) || (groups > 0) != (tokens > 0)) {
        return bad_value(
            absl::StrCat("<groups>:<prefix tokens>, both >= 1 (or 0:0 for none), at "
                         "most 1048576 groups and ",
                         kMaxRequestTokens, " tokens"));
      }
      spec.prefix_groups = static_cast<int32_t>(groups);
      spec.prefix_tokens = static_cast<int32_t>(tokens);
    } else if (key == "samples") {
      if (!ParseCount(value, 1, kMaxRequestWidth, &count)) {
        return bad_value(absl::StrCat("an integer in [1, ", kMaxRequestWidth, "]"));
      }
      spec.num_samples = static_cast<int32_t>(count);
    } else if (key == "beam") {
      if (!ParseCount(value, 1, kMaxRequestWidth, &count)) {
        return bad_value(absl::StrCat("an integer in [1, ", kMaxRequestWidth, "]"));
      }
      spec.beam_width = static_cast<int32_t>(count);
    } else if (key == "seed") {
      uint64_t seed;
      if (!absl::SimpleAtoi(AbslView(value), &seed)) return bad_value("an unsigned integer");
      spec.seed = seed;
    } else {
      return BadSpec(absl::StrCat("unknown key '", Excerpt(key, 40), "'"));
    }
  }
  return spec;
}

absl::StatusOr<Workload> GenerateSynthetic(const SyntheticSpec& spec_in,
                                           const WorkloadOptions& options) {
  PAGEDKV_RETURN_IF_ERROR(internal::ValidateWorkloadOptions(options));
  SyntheticSpec spec = spec_in;
  if (spec.num_requests < 1 || spec.num_requests > kMaxWorkloadRequests) {
    return BadSpec(absl::StrCat("n = ", spec.num_requests, " is outside [1, ", kMaxWorkloadRequests,
                                "] (the limit of one workload)"));
  }
  if (spec.num_samples < 1 || spec.num_samples > kMaxRequestWidth || spec.beam_width < 1 ||
      spec.beam_width > kMaxRequestWidth || (spec.num_samples > 1 && spec.beam_width > 1)) {
    return BadSpec(absl::StrCat("samples = ", spec.num_samples, " and beam = ", spec.beam_width,
                                ": each in [1, ", kMaxRequestWidth, "], not both above 1"));
  }
  if (!(spec.arrivals.rate_per_s > 0)) {
    return BadSpec(absl::StrCat("rate = ", spec.arrivals.rate_per_s, " must be > 0"));
  }
  PAGEDKV_RETURN_IF_ERROR(FillEmpirical(&spec.prompt, /*prompt_lengths=*/true, options));
  PAGEDKV_RETURN_IF_ERROR(FillEmpirical(&spec.output, /*prompt_lengths=*/false, options));
  // The longest request the spec can produce, in 64-bit, before anything is generated.
  const int64_t longest = MaxLength(spec.prompt) + spec.prefix_tokens + MaxLength(spec.output);
  if (spec.prefix_tokens < 0 || longest > kMaxRequestTokens) {
    return BadSpec(absl::StrCat("prompts (with their prefix) and outputs up to ", longest,
                                " tokens exceed the limit of ", kMaxRequestTokens,
                                " tokens per request; lower the lengths or give a :MAX cap"));
  }

  Workload w;
  w.name = "synthetic";
  w.source = spec_in.ToString();
  const int64_t n = options.max_requests > 0 ? std::min(spec.num_requests, options.max_requests)
                                             : spec.num_requests;
  w.requests.reserve(static_cast<size_t>(n));
  // Independent streams per quantity, so that e.g. changing the output distribution leaves the
  // arrivals and prompt lengths of a seed unchanged.
  internal::Rng arrival_rng(internal::Mix64(spec.seed) ^ 0xa1);
  internal::Rng prompt_rng(internal::Mix64(spec.seed) ^ 0xb2);
  internal::Rng output_rng(internal::Mix64(spec.seed) ^ 0xc3);
  internal::Rng group_rng(internal::Mix64(spec.seed) ^ 0xd4);
  // Gamma gaps with mean 1/rate and coefficient of variation cv: shape 1/cv^2, scale cv^2/rate.
  const double shape = 1.0 / (spec.arrivals.cv * spec.arrivals.cv);
  const double scale = spec.arrivals.cv * spec.arrivals.cv / spec.arrivals.rate_per_s;
  double clock_s = 0;
  for (int64_t i = 0; i < n; ++i) {
    Request r;
    if (i > 0) {
      clock_s += spec.arrivals.kind == ArrivalProcess::Kind::kPoisson
                     ? arrival_rng.Exponential(spec.arrivals.rate_per_s)
                 : shape < 1e12 ? arrival_rng.Gamma(shape) * scale
                                : 1.0 / spec.arrivals.rate_per_s;  // cv ~ 0: regular gaps
    }
    r.arrival_time_s = clock_s;
    int64_t prompt = Sample(spec.prompt, prompt_rng);
    if (spec.prefix_groups > 0) {
      const uint64_t group = group_rng.Below(static_cast<uint64_t>(spec.prefix_groups));
      // One hash per group, covering the whole prefix; ids are the small integers 0..k-1.
      r.prefix_block_hashes = {group};
      r.hash_block_tokens = spec.prefix_tokens;
      prompt += spec.prefix_tokens;
    }
    r.prompt_tokens = static_cast<int32_t>(prompt);  // <= kMaxRequestTokens (checked above)
    r.output_tokens = Sample(spec.output, output_rng);
    r.num_samples = spec.num_samples;
    r.beam_width = spec.beam_width;
    w.requests.push_back(std::move(r));
  }
  internal::FinalizeWorkload(options, &w);
  PAGEDKV_RETURN_IF_ERROR(w.Validate());  // e.g. arrivals that overflowed to infinity
  return w;
}

}  // namespace pagedkv
