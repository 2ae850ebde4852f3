#include "internal/report_data.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "internal/w_text_file.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/input_limits.h"
#include "pagedkv/core/status.h"

namespace pagedkv::internal {
namespace {

using Json = nlohmann::ordered_json;

absl::Status FileError(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(AbslView(path), ": ", AbslView(message)));
}

std::string ScalarText(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number()) return absl::StrCat(v.get<double>());
  return v.dump();
}

// A parsed CSV header: column name -> index.
class CsvColumns {
 public:
  static absl::StatusOr<CsvColumns> FromHeader(std::string_view line, std::string_view path,
                                               std::vector<std::string_view> required) {
    CsvColumns c;
    if (!SplitCsvQuoted(line, &c.names_)) {
      return LineError(path, 1, "unterminated quote in the header line");
    }
    std::vector<std::string> missing;
    for (std::string_view name : required) {
      if (!c.Find(name)) missing.emplace_back(name);
    }
    if (!missing.empty()) {
      return LineError(path, 1,
                       absl::StrCat("header lacks column(s) ", absl::StrJoin(missing, ", "),
                                    "; expected a header such as ",
                                    absl::StrJoin(required, ",", [](std::string* out, auto v) {
                                      absl::StrAppend(out, AbslView(v));
                                    })));
    }
    return c;
  }
  std::optional<size_t> Find(std::string_view name) const {
    for (size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return i;
    }
    return std::nullopt;
  }
  size_t size() const { return names_.size(); }

 private:
  std::vector<std::string> names_;
};

// Walks the data lines of a CSV buffer: header first, then each non-blank line split into fields
// with the header's field count checked.
class CsvReader {
 public:
  CsvReader(std::string_view text, std::string_view path) : cursor_(text), path_(path) {}

  absl::StatusOr<CsvColumns> Header(std::vector<std::string_view> required) {
    std::string_view line;
    if (!cursor_.Next(&line) || TrimSpaces(line).empty()) {
      return LineError(path_, 1, "no header; the first line must name the columns");
    }
    return CsvColumns::FromHeader(line, path_, std::move(required));
  }

  // Next data line; false at the end. `status` is set on a malformed line.
  bool Next(size_t num_columns, std::vector<std::string>* fields, absl::Status* status) {
    std::string_view line;
    while (cursor_.Next(&line)) {
      if (TrimSpaces(line).empty()) continue;
      if (!SplitCsvQuoted(line, fields)) {
        *status = LineError(path_, cursor_.line_number(), "unterminated quote");
        return false;
      }
      if (fields->size() != num_columns) {
        *status = LineError(path_, cursor_.line_number(),
                            absl::StrCat("expected ", num_columns, " fields as in the header, got ",
                                         fields->size()));
        return false;
      }
      return true;
    }
    return false;
  }

  absl::Status Number(const std::vector<std::string>& fields, size_t column, std::string_view name,
                      double* out) const {
    if (!ParseDouble(TrimSpaces(fields[column]), out) || !std::isfinite(*out)) {
      return LineError(path_, cursor_.line_number(),
                       absl::StrCat("column ", AbslView(name), ": '", Excerpt(fields[column], 40),
                                    "' is not a finite number"));
    }
    return absl::OkStatus();
  }

 private:
  LineCursor cursor_;
  std::string path_;
};

template <typename Series>
Series& SeriesFor(std::vector<Series>& all, const std::string& policy) {
  for (Series& s : all) {
    if (s.policy == policy) return s;
  }
  all.emplace_back();
  all.back().policy = policy;
  return all.back();
}

}  // namespace

std::string RunLabel(std::string_view policy, std::string_view router) {
  return router.empty() ? std::string(policy)
                        : absl::StrCat(AbslView(policy), "/", AbslView(router));
}

double ReportNumbers::Get(std::string_view key) const {
  auto it = numbers.find(std::string(key));
  return it == numbers.end() ? std::nan("") : it->second;
}

bool SplitCsvQuoted(std::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string field;
  size_t i = 0;
  while (true) {
    field.clear();
    // Leading spaces before an opening quote are ignored.
    size_t j = i;
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    if (j < line.size() && line[j] == '"') {
      i = j + 1;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        field += line[i++];
      }
      if (!closed) return false;
      // Anything up to the next comma after the closing quote is ignored.
      size_t comma = line.find(',', i);
      fields->push_back(field);
      if (comma == std::string_view::npos) return true;
      i = comma + 1;
    } else {
      size_t comma = line.find(',', i);
      std::string_view raw =
          line.substr(i, comma == std::string_view::npos ? std::string_view::npos : comma - i);
      fields->emplace_back(TrimSpaces(raw));
      if (comma == std::string_view::npos) return true;
      i = comma + 1;
    }
  }
}

absl::StatusOr<ReportSummary> ParseReportSummary(std::string_view text, std::string_view path) {
  // Bounded before parsing: the parser recurses per level of nesting.
  if (absl::Status st = CheckJsonNesting(text, kMaxJsonDepth); !st.ok()) {
    return FileError(path, StdView(st.message()));
  }
  // nlohmann::json reports errors by exception; they are caught here and never cross the API.
  Json root;
  try {
    root = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    int64_t line = 1;
    if (const auto* pe = dynamic_cast<const Json::parse_error*>(&e)) {
      const size_t end = std::min<size_t>(pe->byte, text.size());
      line += std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(end), '\n');
      // nlohmann counts the byte after the last one read; a trailing newline is not a new line.
      if (end > 0 && end == text.size() && text[end - 1] == '\n') --line;
    }
    return LineError(path, line, absl::StrCat("not valid JSON: ", Excerpt(e.what(), 160)));
  }
  if (!root.is_object()) {
    return FileError(path, "expected a JSON object with a \"policies\" array at the top level");
  }
  ReportSummary summary;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const Json& v = it.value();
    if (it.key() == "workload") {
      if (!v.is_object()) return FileError(path, "\"workload\" must be an object");
      if (v.contains("name")) summary.workload_name = ScalarText(v["name"]);
      if (v.contains("source")) summary.workload_source = ScalarText(v["source"]);
      if (v.contains("num_requests") && v["num_requests"].is_number()) {
        summary.workload_num_requests = v["num_requests"].get<double>();
      }
    } else if (it.key() != "policies" && v.is_primitive() && !v.is_null()) {
      summary.context.emplace_back(it.key(), ScalarText(v));
    }
  }
  if (!root.contains("policies")) {
    return FileError(path, "no \"policies\" array; was it written by `pagedkv simulate`?");
  }
  const Json& policies = root["policies"];
  if (!policies.is_array()) return FileError(path, "\"policies\" must be an array");
  for (size_t i = 0; i < policies.size(); ++i) {
    const Json& p = policies[i];
    const std::string where = absl::StrCat("policies[", i, "]");
    if (!p.is_object()) return FileError(path, absl::StrCat(where, " must be an object"));
    if (!p.contains("policy") || !p["policy"].is_string()) {
      return FileError(path, absl::StrCat(where, " lacks a string \"policy\" (the policy name)"));
    }
    ReportPolicy policy;
    policy.name = p["policy"].get<std::string>();
    if (p.contains("router") && p["router"].is_string()) {
      policy.name = RunLabel(policy.name, p["router"].get<std::string>());
    }
    if (p.contains("replicas")) {
      const Json& replicas = p["replicas"];
      if (!replicas.is_array()) {
        return FileError(path, absl::StrCat(where, ".replicas must be an array"));
      }
      for (size_t r = 0; r < replicas.size(); ++r) {
        if (!replicas[r].is_object()) {
          return FileError(path, absl::StrCat(where, ".replicas[", r, "] must be an object"));
        }
        ReportNumbers rep;
        for (auto it = replicas[r].begin(); it != replicas[r].end(); ++it) {
          const Json& v = it.value();
          if (v.is_number() && std::isfinite(v.get<double>()))
            rep.numbers[it.key()] = v.get<double>();
        }
        policy.replicas.push_back(std::move(rep));
      }
    }
    for (auto it = p.begin(); it != p.end(); ++it) {
      const Json& v = it.value();
      if (it.key() == "policy" || v.is_null()) continue;
      if (v.is_number()) {
        const double d = v.get<double>();
        if (!std::isfinite(d)) {
          return FileError(path, absl::StrCat(where, ".", Excerpt(it.key(), 60), " is not finite"));
        }
        policy.numbers[it.key()] = d;
      } else if (v.is_boolean()) {
        policy.numbers[it.key()] = v.get<bool>() ? 1 : 0;
      } else if (v.is_string()) {
        // Metric names are numbers by contract; a string there is a writer bug worth reporting.
        if (absl::EndsWith(it.key(), "_s") || absl::EndsWith(it.key(), "_mean") ||
            absl::EndsWith(it.key(), "_rate") || absl::EndsWith(it.key(), "_bytes")) {
          return FileError(path, absl::StrCat(where, ".", Excerpt(it.key(), 60), " is \"",
                                              Excerpt(v.get_ref<const std::string&>(), 40),
                                              "\", expected a number"));
        }
        policy.strings[it.key()] = v.get<std::string>();
      }
    }
    summary.policies.push_back(std::move(policy));
  }
  return summary;
}

absl::StatusOr<std::vector<TimelineSeries>> ParseTimelineCsv(std::string_view text,
                                                             std::string_view path) {
  CsvReader reader(text, path);
  std::vector<std::string_view> required = {"policy", "time_s", "running", "capacity_tokens",
                                            "used_tokens"};
  PAGEDKV_ASSIGN_OR_RETURN(CsvColumns columns, reader.Header(std::move(required)));
  const size_t c_policy = *columns.Find("policy"), c_time = *columns.Find("time_s");
  const size_t c_running = *columns.Find("running");
  const size_t c_capacity = *columns.Find("capacity_tokens");
  const size_t c_used = *columns.Find("used_tokens");
  const std::optional<size_t> c_waiting = columns.Find("waiting");
  const std::optional<size_t> c_swapped = columns.Find("swapped");
  const std::optional<size_t> c_router = columns.Find("router");
  std::vector<TimelineSeries> all;
  std::vector<std::string> fields;
  absl::Status status;
  while (reader.Next(columns.size(), &fields, &status)) {
    double time_s, running, capacity, used, waiting = 0, swapped = 0;
    PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, c_time, "time_s", &time_s));
    PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, c_running, "running", &running));
    PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, c_capacity, "capacity_tokens", &capacity));
    PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, c_used, "used_tokens", &used));
    if (c_waiting) PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, *c_waiting, "waiting", &waiting));
    if (c_swapped) PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, *c_swapped, "swapped", &swapped));
    TimelineSeries& s =
        SeriesFor(all, RunLabel(fields[c_policy], c_router ? fields[*c_router] : ""));
    s.time_s.push_back(time_s);
    s.running.push_back(running);
    s.capacity_tokens.push_back(capacity);
    s.used_tokens.push_back(used);
    if (c_waiting) s.waiting.push_back(waiting);
    if (c_swapped) s.swapped.push_back(swapped);
  }
  PAGEDKV_RETURN_IF_ERROR(status);
  return all;
}

absl::StatusOr<std::vector<LatencySeries>> ParseRequestsCsv(std::string_view text,
                                                            std::string_view path) {
  CsvReader reader(text, path);
  std::vector<std::string_view> required = {"policy", "ttft_s", "tpot_s"};
  PAGEDKV_ASSIGN_OR_RETURN(CsvColumns columns, reader.Header(std::move(required)));
  const size_t c_policy = *columns.Find("policy"), c_ttft = *columns.Find("ttft_s");
  const size_t c_tpot = *columns.Find("tpot_s");
  const std::optional<size_t> c_finish = columns.Find("finish_s");
  const std::optional<size_t> c_output = columns.Find("output_tokens");
  const std::optional<size_t> c_router = columns.Find("router");
  std::vector<LatencySeries> all;
  std::vector<std::string> fields;
  absl::Status status;
  while (reader.Next(columns.size(), &fields, &status)) {
    double ttft, tpot, finish = 0, output = 2;
    PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, c_ttft, "ttft_s", &ttft));
    PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, c_tpot, "tpot_s", &tpot));
    if (c_finish) PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, *c_finish, "finish_s", &finish));
    if (c_output) {
      PAGEDKV_RETURN_IF_ERROR(reader.Number(fields, *c_output, "output_tokens", &output));
    }
    LatencySeries& s =
        SeriesFor(all, RunLabel(fields[c_policy], c_router ? fields[*c_router] : ""));
    ++s.num_requests;
    // Negative times mean "not reached" (metrics.h): the request never got that far.
    if (ttft >= 0) s.ttft_s.push_back(ttft);
    if (finish >= 0 && output > 1 && tpot >= 0) s.tpot_s.push_back(tpot);
  }
  PAGEDKV_RETURN_IF_ERROR(status);
  return all;
}

}  // namespace pagedkv::internal
