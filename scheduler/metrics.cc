#include "pagedkv/scheduler/metrics.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace pagedkv {

void MetricsCollector::AddStep(const TimelineRow& row, int64_t batch_seqs, double step_seconds) {
  const double cap = row.capacity_tokens > 0 ? static_cast<double>(row.capacity_tokens) : 1.0;
  const double w = step_seconds;
  const double util = static_cast<double>(row.used_tokens) / cap;
  total_s_ += w;
  w_util_ += w * util;
  w_internal_ += w * static_cast<double>(row.internal_frag_tokens) / cap;
  w_reserved_ += w * static_cast<double>(row.reserved_unused_tokens) / cap;
  w_external_ += w * static_cast<double>(row.external_frag_tokens) / cap;
  w_rounding_ += w * static_cast<double>(row.rounding_tokens) / cap;
  w_shared_ += w * static_cast<double>(row.shared_saved_tokens) / cap;
  w_batch_ += w * static_cast<double>(batch_seqs);
  max_util_ = std::max(max_util_, util);
  max_batch_ = std::max(max_batch_, batch_seqs);
  if (steps_ % stride_ == 0) {
    timeline_.push_back(row);
    if (static_cast<int64_t>(timeline_.size()) >= 2 * max_rows_) {
      // Keep every other row; later steps are sampled at the doubled stride.
      size_t out = 0;
      for (size_t i = 0; i < timeline_.size(); i += 2) timeline_[out++] = timeline_[i];
      timeline_.resize(out);
      stride_ *= 2;
    }
  }
  ++steps_;
}

void MetricsCollector::FillSummary(PolicySummary& s) const {
  const double t = total_s_ > 0 ? total_s_ : 1.0;
  s.kv_utilization_mean = w_util_ / t;
  s.kv_utilization_max = max_util_;
  s.internal_fragmentation_mean = w_internal_ / t;
  s.reserved_unused_mean = w_reserved_ / t;
  s.external_fragmentation_mean = w_external_ / t;
  s.rounding_mean = w_rounding_ / t;
  s.pages_saved_by_sharing_mean = w_shared_ / t;
  s.mean_batch_size = w_batch_ / t;
  s.max_batch_size = max_batch_;
  s.num_steps = steps_;
  s.busy_s = total_s_;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

void SummarizeRequests(absl::Span<const RequestRecord> records, PolicySummary& s) {
  std::vector<double> ttft;
  std::vector<double> tpot;
  double first_arrival = records.empty() ? 0 : records.front().arrival_s;
  double last_finish = first_arrival;
  int64_t out_tokens = 0;
  int64_t all_tokens = 0;
  int64_t admitted_prompt_tokens = 0;
  int64_t first_hit_tokens = 0;
  s.requests_total = static_cast<int64_t>(records.size());
  for (const RequestRecord& r : records) {
    first_arrival = std::min(first_arrival, r.arrival_s);
    if (r.rejected) ++s.requests_rejected;
    if (r.rejected) {
      switch (r.reject_cause) {
        case RejectCause::kTooLong:
          ++s.requests_rejected_too_long;
          break;
        case RejectCause::kMemory:
          ++s.requests_rejected_memory;
          break;
        case RejectCause::kWatermark:
          ++s.requests_rejected_watermark;
          break;
        case RejectCause::kTokenBudget:
          ++s.requests_rejected_token_budget;
          break;
        case RejectCause::kMaxNumSeqs:
          ++s.requests_rejected_max_num_seqs;
          break;
      }
    }
    if (r.prefix_cached_tokens >= 0) {
      admitted_prompt_tokens += r.prompt_tokens;
      first_hit_tokens += r.prefix_cached_tokens;
    }
    if (!r.completed()) continue;
    ++s.requests_completed;
    last_finish = std::max(last_finish, r.finish_s);
    ttft.push_back(r.ttft_s());
    if (r.output_tokens > 1) tpot.push_back(r.tpot_s());
    out_tokens += static_cast<int64_t>(r.output_tokens) * r.num_seqs;
    all_tokens += r.prompt_tokens + static_cast<int64_t>(r.output_tokens) * r.num_seqs;
  }
  s.prefix_reuse_ratio =
      admitted_prompt_tokens > 0
          ? static_cast<double>(first_hit_tokens) / static_cast<double>(admitted_prompt_tokens)
          : 0.0;
  s.makespan_s = last_finish - first_arrival;
  const double span = s.makespan_s > 0 ? s.makespan_s : 1.0;
  s.throughput_requests_per_s = static_cast<double>(s.requests_completed) / span;
  s.throughput_tokens_per_s = static_cast<double>(out_tokens) / span;
  s.throughput_total_tokens_per_s = static_cast<double>(all_tokens) / span;
  s.ttft_p50_s = Percentile(ttft, 50);
  s.ttft_p90_s = Percentile(ttft, 90);
  s.ttft_p99_s = Percentile(ttft, 99);
  s.tpot_p50_s = Percentile(tpot, 50);
  s.tpot_p90_s = Percentile(tpot, 90);
  s.tpot_p99_s = Percentile(tpot, 99);
}

namespace {

using Json = nlohmann::ordered_json;

Json SummaryObject(const PolicySummary& s) {
  Json j;
  if (s.replica >= 0) j["replica"] = s.replica;
  j["policy"] = s.policy;
  if (!s.router.empty()) j["router"] = s.router;
  j["block_size"] = s.block_size;
  j["requests_total"] = s.requests_total;
  j["requests_completed"] = s.requests_completed;
  j["requests_rejected"] = s.requests_rejected;
  j["requests_rejected_too_long"] = s.requests_rejected_too_long;
  j["requests_rejected_memory"] = s.requests_rejected_memory;
  j["requests_rejected_watermark"] = s.requests_rejected_watermark;
  j["requests_rejected_token_budget"] = s.requests_rejected_token_budget;
  j["requests_rejected_max_num_seqs"] = s.requests_rejected_max_num_seqs;
  j["makespan_s"] = s.makespan_s;
  j["throughput_requests_per_s"] = s.throughput_requests_per_s;
  j["throughput_tokens_per_s"] = s.throughput_tokens_per_s;
  j["throughput_total_tokens_per_s"] = s.throughput_total_tokens_per_s;
  j["ttft_p50_s"] = s.ttft_p50_s;
  j["ttft_p90_s"] = s.ttft_p90_s;
  j["ttft_p99_s"] = s.ttft_p99_s;
  j["tpot_p50_s"] = s.tpot_p50_s;
  j["tpot_p90_s"] = s.tpot_p90_s;
  j["tpot_p99_s"] = s.tpot_p99_s;
  j["mean_batch_size"] = s.mean_batch_size;
  j["max_batch_size"] = s.max_batch_size;
  j["kv_utilization_mean"] = s.kv_utilization_mean;
  j["kv_utilization_max"] = s.kv_utilization_max;
  j["internal_fragmentation_mean"] = s.internal_fragmentation_mean;
  j["reserved_unused_mean"] = s.reserved_unused_mean;
  j["external_fragmentation_mean"] = s.external_fragmentation_mean;
  j["rounding_mean"] = s.rounding_mean;
  j["pages_saved_by_sharing_mean"] = s.pages_saved_by_sharing_mean;
  j["prefix_hit_rate"] = s.prefix_hit_rate;
  j["prefix_reuse_ratio"] = s.prefix_reuse_ratio;
  j["remote_hit_rate"] = s.remote_hit_rate;
  j["remote_load_bytes"] = s.remote_load_bytes;
  j["prompt_tokens_computed"] = s.prompt_tokens_computed;
  j["preemptions"] = s.preemptions;
  j["swap_bytes"] = s.swap_bytes;
  j["copy_bytes"] = s.copy_bytes;
  j["capacity_tokens"] = s.capacity_tokens;
  j["num_steps"] = s.num_steps;
  j["busy_s"] = s.busy_s;
  return j;
}

bool AnyCluster(absl::Span<const PolicyRunResult> results) {
  for (const PolicyRunResult& r : results) {
    if (!r.replicas.empty()) return true;
  }
  return false;
}

std::string Num(double v) { return absl::StrFormat("%.6f", v); }

}  // namespace

std::string SummaryJson(const SimulationInfo& info, absl::Span<const PolicyRunResult> results) {
  Json root;
  root["workload"] = {{"name", info.workload_name},
                      {"num_requests", info.num_requests},
                      {"source", info.workload_source}};
  root["model"] = info.model;
  root["gpu"] = info.gpu;
  root["block_size"] = info.block_size;
  root["preemption_mode"] = info.preemption_mode;
  root["max_num_seqs"] = info.max_num_seqs;
  root["max_num_batched_tokens"] = info.max_num_batched_tokens;
  root["kv_budget_bytes"] = info.kv_budget_bytes;
  root["max_model_len"] = info.max_model_len;
  root["seed"] = info.seed;
  if (!info.extent_allocator.empty()) root["extent_allocator"] = info.extent_allocator;
  root["num_replicas"] = info.num_replicas;
  if (info.remote_capacity_bytes > 0) {
    root["remote_capacity_bytes"] = info.remote_capacity_bytes;
    root["remote_bandwidth_bytes_per_s"] = info.remote_bandwidth_bytes_per_s;
    root["remote_latency_s"] = info.remote_latency_s;
  }
  Json policies = Json::array();
  for (const PolicyRunResult& r : results) {
    Json entry = SummaryObject(r.summary);
    if (!r.replicas.empty()) {
      Json replicas = Json::array();
      for (const PolicySummary& rep : r.replicas) replicas.push_back(SummaryObject(rep));
      entry["replicas"] = std::move(replicas);
    }
    policies.push_back(std::move(entry));
  }
  root["policies"] = std::move(policies);
  return root.dump(2) + "\n";
}

absl::Status WriteSimulationOutputs(const std::string& dir, const SimulationInfo& info,
                                    absl::Span<const PolicyRunResult> results) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create output directory '", dir, "': ", ec.message()));
  }
  const bool cluster = AnyCluster(results);
  const auto open = [&](const std::string& name, std::ofstream& f) -> absl::Status {
    const std::string path = (std::filesystem::path(dir) / name).string();
    f.open(path, std::ios::binary | std::ios::trunc);
    if (!f) return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
    return absl::OkStatus();
  };
  {
    std::ofstream f;
    if (absl::Status st = open("summary.json", f); !st.ok()) return st;
    f << SummaryJson(info, results);
    f.close();  // a full disk shows only when the buffer is flushed
    if (!f)
      return absl::InternalError(absl::StrCat(
          "write of ", (std::filesystem::path(dir) / "summary.json").string(), " failed"));
  }
  {
    std::ofstream f;
    if (absl::Status st = open("timeline.csv", f); !st.ok()) return st;
    f << "policy," << (cluster ? "router," : "")
      << "step,time_s,running,waiting,swapped,batch_tokens,capacity_tokens,used_tokens,"
         "reserved_unused_tokens,internal_frag_tokens,external_frag_tokens,rounding_tokens,"
         "shared_saved_tokens,preemptions_total\n";
    for (const PolicyRunResult& r : results) {
      for (const TimelineRow& t : r.timeline) {
        f << r.summary.policy << ',';
        if (cluster) f << r.summary.router << ',';
        f << t.step << ',' << Num(t.time_s) << ',' << t.running << ',' << t.waiting << ','
          << t.swapped << ',' << t.batch_tokens << ',' << t.capacity_tokens << ',' << t.used_tokens
          << ',' << t.reserved_unused_tokens << ',' << t.internal_frag_tokens << ','
          << t.external_frag_tokens << ',' << t.rounding_tokens << ',' << t.shared_saved_tokens
          << ',' << t.preemptions_total << '\n';
      }
    }
    f.close();  // a full disk shows only when the buffer is flushed
    if (!f)
      return absl::InternalError(absl::StrCat(
          "write of ", (std::filesystem::path(dir) / "timeline.csv").string(), " failed"));
  }
  {
    std::ofstream f;
    if (absl::Status st = open("requests.csv", f); !st.ok()) return st;
    f << "policy," << (cluster ? "router,replica," : "")
      << "request_id,arrival_s,first_token_s,finish_s,ttft_s,tpot_s,prompt_tokens,"
         "output_tokens,preemptions,prefix_cached_tokens\n";
    for (const PolicyRunResult& r : results) {
      for (const RequestRecord& q : r.requests) {
        f << r.summary.policy << ',';
        if (cluster) f << r.summary.router << ',' << q.replica << ',';
        f << q.request_id << ',' << Num(q.arrival_s) << ',' << Num(q.first_token_s) << ','
          << Num(q.finish_s) << ',' << Num(q.ttft_s()) << ',' << Num(q.tpot_s()) << ','
          << q.prompt_tokens << ',' << q.output_tokens << ',' << q.preemptions << ','
          << q.prefix_cached_tokens << '\n';
      }
    }
    f.close();  // a full disk shows only when the buffer is flushed
    if (!f)
      return absl::InternalError(absl::StrCat(
          "write of ", (std::filesystem::path(dir) / "requests.csv").string(), " failed"));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv
