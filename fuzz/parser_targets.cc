// Fuzz targets of the text parsers: model JSON, the trace loaders, synthetic specs and the data
// readers of `pagedkv report` (declared in fuzz_targets.h).
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_targets.h"
#include "internal/report_data.h"
#include "internal/trace_parse.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/scheduler/synthetic.h"
#include "pagedkv/scheduler/trace.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv::fuzz {
namespace {

// Every message quotes excerpts, never a whole input: far below the input sizes fuzzed.
constexpr size_t kMaxMessageBytes = 2048;

std::string CheckError(const std::string& what, const absl::Status& st) {
  if (!absl::IsInvalidArgument(st)) {
    return absl::StrCat(what, ": expected InvalidArgument, got ", st.ToString());
  }
  if (st.message().size() > kMaxMessageBytes) {
    return absl::StrCat(what, ": a message of ", st.message().size(), " bytes");
  }
  return "";
}

std::string CheckWorkload(const std::string& what, const Workload& w) {
  if (absl::Status st = w.Validate(); !st.ok()) {
    return absl::StrCat(what, ": accepted an invalid workload: ", st.message());
  }
  for (size_t i = 0; i < w.requests.size(); ++i) {
    const Request& r = w.requests[i];
    if (r.request_id != i) return absl::StrCat(what, ": request ", i, " has id ", r.request_id);
    if (!r.prefix_block_hashes.empty() &&
        r.prefix_block_hashes.size() > static_cast<size_t>(kMaxRequestTokens / 512 + 1)) {
      return absl::StrCat(what, ": ", r.prefix_block_hashes.size(), " hash ids");
    }
  }
  return "";
}

}  // namespace

std::string FuzzModelJson(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(text);
  if (!spec.ok()) return CheckError("FromJson", spec.status());
  if (absl::Status st = spec->Validate(); !st.ok()) {
    return absl::StrCat("FromJson accepted an invalid spec: ", st.message());
  }
  absl::StatusOr<ModelSpec> again = ModelSpec::FromJson(spec->ToJson());
  if (!again.ok()) return absl::StrCat("ToJson is not read back: ", again.status().ToString());
  if (!(*again == *spec)) return "ToJson -> FromJson changed the spec";
  return "";
}

std::string FuzzTraces(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  struct Variant {
    const char* path;
    std::optional<TraceFormat> format;
  };
  static const Variant kVariants[] = {
      {"trace.csv", std::nullopt},
      {"trace.jsonl", std::nullopt},
      {"trace.csv", TraceFormat::kAzureCsv},
      {"trace.jsonl", TraceFormat::kMooncakeJsonl},
      {"trace.csv", TraceFormat::kShareGptCsv},
  };
  for (const Variant& v : kVariants) {
    for (bool skip : {false, true}) {
      WorkloadOptions options;
      options.skip_bad_lines = skip;
      // Some variety in the options that reshape a workload, from the input itself.
      options.max_requests = size % 3 == 0 ? 0 : static_cast<int64_t>(size % 7);
      options.rate_scale = size % 2 == 0 ? 1.0 : 1e-300;
      const std::string what =
          absl::StrCat(v.path, " as ",
                       v.format ? std::string(TraceFormatName(*v.format)) : std::string("sniffed"),
                       skip ? " skipping bad lines" : "");
      absl::StatusOr<Workload> w = internal::ParseTraceText(v.path, text, options, v.format);
      const std::string broken = w.ok() ? CheckWorkload(what, *w) : CheckError(what, w.status());
      if (!broken.empty()) return broken;
    }
  }
  return "";
}

std::string FuzzSyntheticSpec(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<SyntheticSpec> spec = ParseSyntheticSpec(text);
  if (!spec.ok()) return CheckError("ParseSyntheticSpec", spec.status());
  const std::string canonical = spec->ToString();
  absl::StatusOr<SyntheticSpec> again = ParseSyntheticSpec(canonical);
  if (!again.ok()) {
    return absl::StrCat("ToString '", canonical, "' is not read back: ", again.status().ToString());
  }
  const auto same_lengths = [](const LengthDistribution& x, const LengthDistribution& y) {
    return x.kind == y.kind && x.a == y.a && x.b == y.b && x.max_tokens == y.max_tokens &&
           x.trace == y.trace;
  };
  if (again->num_requests != spec->num_requests || again->arrivals.kind != spec->arrivals.kind ||
      again->arrivals.rate_per_s != spec->arrivals.rate_per_s ||
      (spec->arrivals.kind == ArrivalProcess::Kind::kGamma &&
       again->arrivals.cv != spec->arrivals.cv) ||
      !same_lengths(again->prompt, spec->prompt) || !same_lengths(again->output, spec->output) ||
      again->prefix_groups != spec->prefix_groups || again->prefix_tokens != spec->prefix_tokens ||
      again->num_samples != spec->num_samples || again->beam_width != spec->beam_width ||
      again->seed != spec->seed) {
    return absl::StrCat("ParseSyntheticSpec(ToString()) differs from the spec: '", canonical, "'");
  }
  if (again->ToString() != canonical) {
    return absl::StrCat("ToString is not canonical: '", canonical, "' then '", again->ToString(),
                        "'");
  }
  // An empirical length distribution reads a trace named by the input: not from the fuzzer.
  if (spec->prompt.kind == LengthDistribution::Kind::kEmpirical ||
      spec->output.kind == LengthDistribution::Kind::kEmpirical) {
    return "";
  }
  WorkloadOptions options;
  options.max_requests = 64;
  absl::StatusOr<Workload> w = GenerateSynthetic(*spec, options);
  if (!w.ok()) return CheckError("GenerateSynthetic", w.status());
  if (static_cast<int64_t>(w->requests.size()) > options.max_requests) {
    return absl::StrCat("GenerateSynthetic made ", w->requests.size(), " requests");
  }
  return CheckWorkload("GenerateSynthetic", *w);
}

std::string FuzzReportData(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<internal::ReportSummary> summary =
      internal::ParseReportSummary(text, "summary.json");
  if (!summary.ok()) {
    if (std::string b = CheckError("summary.json", summary.status()); !b.empty()) return b;
  } else {
    for (const internal::ReportPolicy& p : summary->policies) {
      for (const auto& [key, value] : p.numbers) {
        if (!std::isfinite(value)) return absl::StrCat("summary.json: ", key, " is not finite");
      }
    }
  }
  absl::StatusOr<std::vector<internal::TimelineSeries>> timeline =
      internal::ParseTimelineCsv(text, "timeline.csv");
  if (!timeline.ok()) {
    if (std::string b = CheckError("timeline.csv", timeline.status()); !b.empty()) return b;
  } else {
    for (const internal::TimelineSeries& s : *timeline) {
      const size_t n = s.time_s.size();
      if (s.running.size() != n || s.capacity_tokens.size() != n || s.used_tokens.size() != n ||
          (!s.waiting.empty() && s.waiting.size() != n) ||
          (!s.swapped.empty() && s.swapped.size() != n)) {
        return "timeline.csv: columns of different lengths";
      }
    }
  }
  absl::StatusOr<std::vector<internal::LatencySeries>> requests =
      internal::ParseRequestsCsv(text, "requests.csv");
  if (!requests.ok()) {
    if (std::string b = CheckError("requests.csv", requests.status()); !b.empty()) return b;
  } else {
    for (const internal::LatencySeries& s : *requests) {
      if (static_cast<int64_t>(s.ttft_s.size()) > s.num_requests ||
          static_cast<int64_t>(s.tpot_s.size()) > s.num_requests) {
        return "requests.csv: more latencies than requests";
      }
    }
  }
  return "";
}

}  // namespace pagedkv::fuzz
