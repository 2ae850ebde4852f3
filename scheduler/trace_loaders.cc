// Loaders for the trace formats of trace.h. Files are read whole and parsed line by line with
// absl's number parsers (the Azure conv trace loads in a few milliseconds); JSONL lines go through
// nlohmann-json so that field order and spacing do not matter.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "internal/trace_parse.h"
#include "internal/w_random.h"
#include "internal/w_text_file.h"
#include "internal/w_workload_util.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/input_limits.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/trace.h"

namespace pagedkv {
namespace {

using internal::LineCursor;
using internal::LineError;
using internal::ParseInt64;

struct VendoredTrace {
  const char* name;
  const char* relative_path;
};
constexpr VendoredTrace kVendoredTraces[] = {
    {"azure-conv", "azure2023/AzureLLMInferenceTrace_conv.csv"},
    {"azure-code", "azure2023/AzureLLMInferenceTrace_code.csv"},
    {"mooncake", "mooncake/synthetic_trace.jsonl"},
    {"sharegpt", "sharegpt/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"},
};

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string FileStem(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.find('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// Handles one malformed line: an error, or a count under skip_bad_lines.
absl::Status BadLine(const std::string& path, int64_t line, std::string_view what,
                     const WorkloadOptions& options, Workload* workload) {
  if (options.skip_bad_lines) {
    ++workload->skipped_lines;
    return absl::OkStatus();
  }
  return LineError(path, line,
                   absl::StrCat(AbslView(what),
                                " (fix the line, or skip bad lines with "
                                "--skip-bad-lines)"));
}

// A request's lengths, checked in 64-bit before anything is made of them: each at most
// kMaxRequestTokens and their sum too (a longer request could never be served and would cost its
// prompt's memory to find out). Lengths below 1 are raised to 1 and counted. False with `*why`
// for lengths over the limit.
bool CheckLengths(int64_t prompt, int64_t output, Workload* w, int32_t* prompt_out,
                  int32_t* output_out, std::string* why) {
  if (prompt > kMaxRequestTokens || output > kMaxRequestTokens ||
      std::max<int64_t>(prompt, 1) + std::max<int64_t>(output, 1) > kMaxRequestTokens) {
    *why = absl::StrCat("prompt ", prompt, " + output ", output, " tokens exceeds the limit of ",
                        kMaxRequestTokens, " tokens per request");
    return false;
  }
  if (prompt < 1) ++w->clamped_prompt_tokens;
  if (output < 1) ++w->clamped_output_tokens;
  *prompt_out = static_cast<int32_t>(std::max<int64_t>(prompt, 1));
  *output_out = static_cast<int32_t>(std::max<int64_t>(output, 1));
  return true;
}

// The request cap of every source (workload.h): loading stops with an error past it.
absl::Status CheckRequestCount(const std::string& path, int64_t line, const Workload& w) {
  if (static_cast<int64_t>(w.requests.size()) < kMaxWorkloadRequests) return absl::OkStatus();
  return LineError(path, line,
                   absl::StrCat("more than ", kMaxWorkloadRequests,
                                " requests, the limit of one workload; split the trace"));
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool ParseFixedDigits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// "YYYY-MM-DD HH:MM:SS[.fffffff]" -> 100 ns ticks since the epoch (fraction of 1..7 digits).
bool ParseAzureTimestamp(std::string_view s, int64_t* ticks) {
  int64_t y, mo, d, h, mi, sec;
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
      s[13] != ':' || s[16] != ':') {
    return false;
  }
  if (!ParseFixedDigits(s, 0, 4, &y) || !ParseFixedDigits(s, 5, 2, &mo) ||
      !ParseFixedDigits(s, 8, 2, &d) || !ParseFixedDigits(s, 11, 2, &h) ||
      !ParseFixedDigits(s, 14, 2, &mi) || !ParseFixedDigits(s, 17, 2, &sec)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  int64_t frac_ticks = 0;
  if (s.size() > 19) {
    if (s[19] != '.' || s.size() == 20 || s.size() > 27) return false;
    int64_t frac;
    const size_t digits = s.size() - 20;
    if (!ParseFixedDigits(s, 20, digits, &frac)) return false;
    for (size_t i = digits; i < 7; ++i) frac *= 10;
    frac_ticks = frac;
  }
  const int64_t seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  *ticks = seconds * 10'000'000 + frac_ticks;
  return true;
}

absl::Status CheckHeader(const std::string& path, std::string_view line,
                         const std::vector<std::string_view>& expected) {
  std::vector<std::string_view> fields;
  internal::SplitCsv(line, &fields);
  if (!line.empty() && static_cast<unsigned char>(line[0]) == 0xEF && !fields.empty() &&
      fields[0].size() >= 3) {
    fields[0].remove_prefix(3);  // UTF-8 byte order mark
  }
  bool ok = fields.size() >= expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) {
    ok = absl::EqualsIgnoreCase(AbslView(fields[i]), AbslView(expected[i]));
  }
  if (!ok) {
    return LineError(path, 1,
                     absl::StrCat("unexpected header '", Excerpt(line), "', expected '",
                                  absl::StrJoin(expected, ",",
                                                [](std::string* out, std::string_view f) {
                                                  absl::StrAppend(out, AbslView(f));
                                                }),
                                  "'"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view TraceFormatName(TraceFormat format) {
  switch (format) {
    case TraceFormat::kAzureCsv:
      return "azure-csv";
    case TraceFormat::kMooncakeJsonl:
      return "mooncake-jsonl";
    case TraceFormat::kShareGptCsv:
      return "sharegpt-csv";
  }
  return "unknown";
}

absl::StatusOr<std::string> ResolveTracePath(std::string_view name_or_path,
                                             const WorkloadOptions& options) {
  for (const VendoredTrace& t : kVendoredTraces) {
    if (name_or_path == t.name) {
      std::string path = absl::StrCat(internal::TracesDir(options), "/", t.relative_path);
      if (!FileExists(path)) {
        return absl::NotFoundError(
            absl::StrCat("vendored trace '", AbslView(name_or_path), "' not found at '", path,
                         "'; set PAGEDKV_TRACES_DIR to the project's data/traces directory"));
      }
      return path;
    }
  }
  std::string path(name_or_path);
  if (!FileExists(path)) {
    return absl::NotFoundError(absl::StrCat(
        "trace '", path, "' is neither a file nor a known name; use a path or one of: ",
        absl::StrJoin(VendoredTraceNames(), ", "),
        ", or a synthetic spec such as 'synthetic:rate=5,n=1000'"));
  }
  return path;
}

namespace {

// An empty workload named after the trace file.
Workload NewTraceWorkload(const std::string& path) {
  Workload w;
  w.name = FileStem(path);
  w.source = path;
  return w;
}

// The format of `data`, the contents of the trace file `path`.
absl::StatusOr<TraceFormat> SniffFormat(const std::string& path, const std::string& data) {
  LineCursor cursor(data);
  std::string_view first;
  while (cursor.Next(&first) && internal::TrimSpaces(first).empty()) {
  }
  // A UTF-8 byte order mark before the first line (spreadsheet exports write one).
  if (absl::StartsWith(AbslView(first), "\xEF\xBB\xBF")) first.remove_prefix(3);
  first = internal::TrimSpaces(first);
  const std::string lower = absl::AsciiStrToLower(AbslView(first));
  if (absl::EndsWith(path, ".jsonl") || absl::EndsWith(path, ".json") ||
      absl::StartsWith(lower, "{")) {
    return TraceFormat::kMooncakeJsonl;
  }
  if (absl::StartsWith(lower, "timestamp,")) return TraceFormat::kAzureCsv;
  if (absl::StartsWith(lower, "num_prefill_tokens,")) return TraceFormat::kShareGptCsv;
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot tell the format of trace '", path, "' from its first line '", Excerpt(first),
      "': expected a CSV header 'TIMESTAMP,ContextTokens,GeneratedTokens' (Azure) or "
      "'num_prefill_tokens,num_decode_tokens,...' (ShareGPT lengths), or JSONL objects with "
      "timestamp, input_length, output_length (Mooncake)"));
}

absl::StatusOr<Workload> ParseAzureTrace(const std::string& path, const std::string& data,
                                         const WorkloadOptions& options) {
  Workload w = NewTraceWorkload(path);
  LineCursor cursor(data);
  std::string_view line;
  if (!cursor.Next(&line)) return LineError(path, 1, "empty file, expected a CSV header");
  PAGEDKV_RETURN_IF_ERROR(
      CheckHeader(path, line, {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}));
  w.requests.reserve(static_cast<size_t>(
      std::min<int64_t>(std::count(data.begin(), data.end(), '\n') + 1, kMaxWorkloadRequests)));
  std::vector<std::string_view> fields;
  bool have_origin = false;
  int64_t origin_ticks = 0;
  while (cursor.Next(&line)) {
    if (internal::TrimSpaces(line).empty()) continue;
    const int64_t n = cursor.line_number();
    internal::SplitCsv(line, &fields);
    if (fields.size() != 3) {
      PAGEDKV_RETURN_IF_ERROR(
          BadLine(path, n,
                  absl::StrCat("expected 3 fields, got ", fields.size(), ": '", Excerpt(line), "'"),
                  options, &w));
      continue;
    }
    int64_t ticks, prompt, output;
    if (!ParseAzureTimestamp(fields[0], &ticks)) {
      PAGEDKV_RETURN_IF_ERROR(BadLine(path, n,
                                      absl::StrCat("bad TIMESTAMP '", Excerpt(fields[0], 40),
                                                   "', expected 'YYYY-MM-DD HH:MM:SS.fffffff'"),
                                      options, &w));
      continue;
    }
    if (!ParseInt64(fields[1], &prompt) || !ParseInt64(fields[2], &output)) {
      PAGEDKV_RETURN_IF_ERROR(
          BadLine(path, n,
                  absl::StrCat("ContextTokens '", Excerpt(fields[1], 40), "' and GeneratedTokens '",
                               Excerpt(fields[2], 40), "' must be integers"),
                  options, &w));
      continue;
    }
    Request r;
    std::string why;
    if (!CheckLengths(prompt, output, &w, &r.prompt_tokens, &r.output_tokens, &why)) {
      PAGEDKV_RETURN_IF_ERROR(BadLine(path, n, why, options, &w));
      continue;
    }
    PAGEDKV_RETURN_IF_ERROR(CheckRequestCount(path, n, w));
    if (!have_origin) {
      origin_ticks = ticks;
      have_origin = true;
    }
    r.arrival_time_s = static_cast<double>(ticks - origin_ticks) * 1e-7;
    w.requests.push_back(std::move(r));
  }
  internal::FinalizeWorkload(options, &w);
  return w;
}

absl::StatusOr<Workload> ParseMooncakeTrace(const std::string& path, const std::string& data,
                                            const WorkloadOptions& options) {
  Workload w = NewTraceWorkload(path);
  LineCursor cursor(data);
  std::string_view line;
  while (cursor.Next(&line)) {
    if (internal::TrimSpaces(line).empty()) continue;
    const int64_t n = cursor.line_number();
    nlohmann::json j;
    if (CheckJsonNesting(line, kMaxJsonDepth).ok()) {
      j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    } else {
      j = nlohmann::json(nlohmann::json::value_t::discarded);
    }
    if (j.is_discarded() || !j.is_object()) {
      PAGEDKV_RETURN_IF_ERROR(BadLine(path, n, "not a JSON object", options, &w));
      continue;
    }
    auto number_field = [&](const char* key, double* out) -> bool {
      auto it = j.find(key);
      if (it == j.end() || !it->is_number()) return false;
      *out = it->get<double>();
      return std::isfinite(*out);
    };
    double timestamp_ms, input_length, output_length;
    if (!number_field("timestamp", &timestamp_ms) || !number_field("input_length", &input_length) ||
        !number_field("output_length", &output_length)) {
      PAGEDKV_RETURN_IF_ERROR(
          BadLine(path, n,
                  "expected numeric fields \"timestamp\" (ms), \"input_length\", \"output_length\"",
                  options, &w));
      continue;
    }
    Request r;
    // Lengths as doubles first: a value beyond int64 (1e30) must not wrap into a small one.
    std::string why;
    const auto as_tokens = [](double v) -> int64_t {
      return v > static_cast<double>(kMaxRequestTokens) ? kMaxRequestTokens + 1
             : v < -1e9                                 ? -1
                                                        : static_cast<int64_t>(std::llround(v));
    };
    if (!CheckLengths(as_tokens(input_length), as_tokens(output_length), &w, &r.prompt_tokens,
                      &r.output_tokens, &why)) {
      PAGEDKV_RETURN_IF_ERROR(BadLine(
          path, n,
          absl::StrCat("input_length ", input_length, " and output_length ", output_length,
                       ": the lengths must be at most ", kMaxRequestTokens, " tokens together"),
          options, &w));
      continue;
    }
    // One hash per 512 prompt tokens; more than the longest prompt could use is malformed.
    constexpr size_t kMaxHashes = kMaxRequestTokens / kMooncakeHashBlockTokens + 1;
    auto hashes = j.find("hash_ids");
    if (hashes != j.end()) {
      bool ok = hashes->is_array() && hashes->size() <= kMaxHashes;
      if (ok) {
        r.prefix_block_hashes.reserve(hashes->size());
        for (const nlohmann::json& h : *hashes) {
          if (!h.is_number_integer() || h.get<int64_t>() < 0) {
            ok = false;
            break;
          }
          r.prefix_block_hashes.push_back(h.get<uint64_t>());
        }
      }
      if (!ok) {
        PAGEDKV_RETURN_IF_ERROR(BadLine(path, n,
                                        absl::StrCat("\"hash_ids\" must be an array of at most ",
                                                     kMaxHashes, " non-negative integers"),
                                        options, &w));
        continue;
      }
    }
    PAGEDKV_RETURN_IF_ERROR(CheckRequestCount(path, n, w));
    r.arrival_time_s = timestamp_ms * 1e-3;
    if (!r.prefix_block_hashes.empty()) r.hash_block_tokens = kMooncakeHashBlockTokens;
    w.requests.push_back(std::move(r));
  }
  internal::FinalizeWorkload(options, &w);
  return w;
}

absl::StatusOr<Workload> ParseShareGptTrace(const std::string& path, const std::string& data,
                                            const WorkloadOptions& options) {
  Workload w = NewTraceWorkload(path);
  LineCursor cursor(data);
  std::string_view line;
  if (!cursor.Next(&line)) return LineError(path, 1, "empty file, expected a CSV header");
  PAGEDKV_RETURN_IF_ERROR(CheckHeader(path, line, {"num_prefill_tokens", "num_decode_tokens"}));
  std::vector<std::string_view> fields;
  internal::Rng rng(options.seed);
  double clock_s = 0;
  while (cursor.Next(&line)) {
    if (internal::TrimSpaces(line).empty()) continue;
    const int64_t n = cursor.line_number();
    internal::SplitCsv(line, &fields);
    int64_t prompt, output;
    if (fields.size() < 2 || !ParseInt64(fields[0], &prompt) || !ParseInt64(fields[1], &output)) {
      PAGEDKV_RETURN_IF_ERROR(
          BadLine(path, n,
                  absl::StrCat("expected integer num_prefill_tokens,num_decode_tokens, got '",
                               Excerpt(line), "'"),
                  options, &w));
      continue;
    }
    Request r;
    std::string why;
    if (!CheckLengths(prompt, output, &w, &r.prompt_tokens, &r.output_tokens, &why)) {
      PAGEDKV_RETURN_IF_ERROR(BadLine(path, n, why, options, &w));
      continue;
    }
    PAGEDKV_RETURN_IF_ERROR(CheckRequestCount(path, n, w));
    // The first request arrives at 0; every later one after an exponential gap.
    if (!w.requests.empty()) clock_s += rng.Exponential(options.poisson_rate_per_s);
    r.arrival_time_s = clock_s;
    w.requests.push_back(std::move(r));
  }
  internal::FinalizeWorkload(options, &w);
  return w;
}

using TraceParser = absl::StatusOr<Workload> (*)(const std::string& path, const std::string& data,
                                                 const WorkloadOptions& options);

TraceParser ParserFor(TraceFormat format) {
  switch (format) {
    case TraceFormat::kAzureCsv:
      return &ParseAzureTrace;
    case TraceFormat::kMooncakeJsonl:
      return &ParseMooncakeTrace;
    case TraceFormat::kShareGptCsv:
      return &ParseShareGptTrace;
  }
  return nullptr;
}

// Checks the options, reads the file once and parses it in the given format (or the sniffed one).
absl::StatusOr<Workload> LoadTrace(const std::string& path, const WorkloadOptions& options,
                                   std::optional<TraceFormat> format) {
  PAGEDKV_RETURN_IF_ERROR(internal::ValidateWorkloadOptions(options));
  PAGEDKV_ASSIGN_OR_RETURN(std::string data, internal::ReadWholeFile(path, "trace"));
  return internal::ParseTraceText(path, data, options, format);
}

}  // namespace

namespace internal {

absl::StatusOr<Workload> ParseTraceText(const std::string& path, const std::string& data,
                                        const WorkloadOptions& options,
                                        std::optional<TraceFormat> format) {
  PAGEDKV_RETURN_IF_ERROR(ValidateWorkloadOptions(options));
  if (!format.has_value()) {
    PAGEDKV_ASSIGN_OR_RETURN(format, SniffFormat(path, data));
  }
  const TraceParser parse = ParserFor(*format);
  if (parse == nullptr) return absl::InternalError("unhandled trace format");
  PAGEDKV_ASSIGN_OR_RETURN(Workload w, parse(path, data, options));
  // Arrival times scaled past the range of a double, say.
  if (absl::Status st = w.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  }
  return w;
}

}  // namespace internal

absl::StatusOr<TraceFormat> SniffTraceFormat(const std::string& path) {
  PAGEDKV_ASSIGN_OR_RETURN(std::string data, internal::ReadWholeFile(path, "trace"));
  return SniffFormat(path, data);
}

absl::StatusOr<Workload> LoadAzureTrace(const std::string& path, const WorkloadOptions& options) {
  return LoadTrace(path, options, TraceFormat::kAzureCsv);
}

absl::StatusOr<Workload> LoadMooncakeTrace(const std::string& path,
                                           const WorkloadOptions& options) {
  return LoadTrace(path, options, TraceFormat::kMooncakeJsonl);
}

absl::StatusOr<Workload> LoadShareGptTrace(const std::string& path,
                                           const WorkloadOptions& options) {
  return LoadTrace(path, options, TraceFormat::kShareGptCsv);
}

absl::StatusOr<Workload> LoadTraceFile(const std::string& path, const WorkloadOptions& options) {
  return LoadTrace(path, options, std::nullopt);
}

}  // namespace pagedkv
