#include "tools/internal/simulate_output.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "pagedkv/core/sizing.h"
#include "pagedkv/scheduler/step_time_model.h"
#include "tools/internal/flag_values.h"

namespace pagedkv::cli {
namespace {

std::string Pct(double fraction) { return absl::StrFormat("%.1f%%", 100.0 * fraction); }

std::string Secs(double s) {
  if (s >= 10) return absl::StrFormat("%.1fs", s);
  if (s >= 1) return absl::StrFormat("%.2fs", s);
  return absl::StrFormat("%.0fms", s * 1e3);
}

}  // namespace

void ProgressBar::Start(std::string label) {
  label_ = std::move(label);
  last_percent_ = -1;
  Draw(0.0);
}

void ProgressBar::Draw(double fraction) {
  if (!enabled_) return;
  const int percent = static_cast<int>(fraction * 100.0);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  std::fprintf(stderr, "\r%-28s [%s%s] %3d%%", label_.c_str(), std::string(filled, '#').c_str(),
               std::string(kWidth - filled, '.').c_str(), percent);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (!enabled_) return;
  std::fprintf(stderr, "\r%*s\r", 70, "");
  std::fflush(stderr);
}

std::string RunLabel(const PolicySummary& s) {
  return s.router.empty() ? s.policy : absl::StrCat(s.policy, "/", s.router);
}

void PrintRejections(std::ostream& err, std::string_view command, const PolicySummary& s,
                     const RejectionContext& c) {
  if (s.requests_rejected == 0) return;
  std::vector<std::string> why;
  if (s.requests_rejected_too_long > 0) {
    why.push_back(absl::StrCat(s.requests_rejected_too_long, " longer than max_model_len ",
                               c.max_model_len,
                               " (prompt + output; --max-model-len, or a model with a longer "
                               "context)"));
  }
  if (s.requests_rejected_memory > 0) {
    why.push_back(absl::StrCat(s.requests_rejected_memory, " larger than the whole KV memory of ",
                               s.capacity_tokens, " tokens (raise --kv-budget or --gpu-mem)"));
  }
  if (s.requests_rejected_watermark > 0) {
    why.push_back(absl::StrCat(s.requests_rejected_watermark,
                               " that fit the KV memory only without the --watermark ",
                               absl::StrFormat("%g", c.watermark), " reserve (lower --watermark)"));
  }
  if (s.requests_rejected_token_budget > 0) {
    why.push_back(absl::StrCat(
        s.requests_rejected_token_budget, " that need more than --max-num-batched-tokens ",
        c.max_num_batched_tokens,
        " tokens in one step (raise it, or keep --chunked-prefill on for long prompts)"));
  }
  if (s.requests_rejected_max_num_seqs > 0) {
    why.push_back(absl::StrCat(s.requests_rejected_max_num_seqs,
                               " with more parallel samples or beams than --max-num-seqs ",
                               c.max_num_seqs));
  }
  err << absl::StrFormat("%s: %s rejected %d requests: %s\n", command, RunLabel(s),
                         s.requests_rejected, absl::StrJoin(why, "; "));
}

void PrintWorkloadNotes(std::ostream& err, std::string_view command, const Workload& w) {
  if (w.skipped_lines > 0) {
    err << absl::StrFormat("%s: skipped %d malformed lines of %s\n", command, w.skipped_lines,
                           w.source);
  }
  if (w.clamped_prompt_tokens > 0 || w.clamped_output_tokens > 0) {
    err << absl::StrFormat(
        "%s: %s has %d prompt lengths and %d output lengths below 1 token; raised to 1\n", command,
        w.source, w.clamped_prompt_tokens, w.clamped_output_tokens);
  }
}

void PrintRunTable(std::ostream& out, absl::Span<const PolicyRunResult> results) {
  size_t width = 18;
  for (const PolicyRunResult& r : results) width = std::max(width, RunLabel(r.summary).size());
  const int w = static_cast<int>(width);
  out << absl::StrFormat("%-*s %11s %6s %8s %9s %7s %7s %7s %7s %7s %7s %8s %8s %8s %8s %7s %7s\n",
                         w, "policy", "done", "rej", "req/s", "tok/s", "kv_use", "int_fr", "resv",
                         "round", "ext_fr", "batch", "preempt", "ttft50", "ttft99", "tpot50",
                         "prefix", "reuse");
  for (const PolicyRunResult& r : results) {
    const PolicySummary& s = r.summary;
    out << absl::StrFormat(
        "%-*s %11s %6d %8.2f %9.0f %7s %7s %7s %7s %7s %7.1f %8d %8s %8s %8s %7s %7s\n", w,
        RunLabel(s), absl::StrCat(s.requests_completed, "/", s.requests_total), s.requests_rejected,
        s.throughput_requests_per_s, s.throughput_tokens_per_s, Pct(s.kv_utilization_mean),
        Pct(s.internal_fragmentation_mean), Pct(s.reserved_unused_mean), Pct(s.rounding_mean),
        Pct(s.external_fragmentation_mean), s.mean_batch_size, s.preemptions, Secs(s.ttft_p50_s),
        Secs(s.ttft_p99_s), Secs(s.tpot_p50_s), Pct(s.prefix_hit_rate), Pct(s.prefix_reuse_ratio));
  }
}

void PrintReplicaTable(std::ostream& out, const PolicyRunResult& result) {
  if (result.replicas.empty()) return;
  out << absl::StrFormat("\nreplicas of %s:\n", RunLabel(result.summary));
  out << absl::StrFormat("%7s %8s %8s %8s %8s %7s %7s %7s %7s %12s %9s\n", "replica", "routed",
                         "done", "ttft50", "ttft99", "kv_use", "prefix", "reuse", "remote",
                         "prefill_tok", "busy");
  for (const PolicySummary& s : result.replicas) {
    out << absl::StrFormat("%7d %8d %8d %8s %8s %7s %7s %7s %7s %12d %9s\n", s.replica,
                           s.requests_total, s.requests_completed, Secs(s.ttft_p50_s),
                           Secs(s.ttft_p99_s), Pct(s.kv_utilization_mean), Pct(s.prefix_hit_rate),
                           Pct(s.prefix_reuse_ratio), Pct(s.remote_hit_rate),
                           s.prompt_tokens_computed, Secs(s.busy_s));
  }
}

void PrintGpuPresets(std::ostream& out) {
  out << absl::StrFormat("%-10s %-28s %-14s %16s %12s %12s %10s  %s\n", "preset", "part",
                         "memory stated", "memory bytes", "FLOP/s", "HBM", "host link", "source");
  for (const std::string& name : GpuSpec::PresetNames()) {
    const GpuSpec g = *GpuSpec::Preset(name);
    out << absl::StrFormat("%-10s %-28s %-14s %16d %12.4g %12s %10s  %s\n", g.name, g.description,
                           g.memory_stated, g.memory_bytes, g.peak_flops_per_s,
                           FormatRate(g.hbm_bytes_per_s), FormatRate(g.host_link_bytes_per_s),
                           g.source);
  }
  out << "\nMemory: the vendor's GB of DRAM are 2^30 bytes (JEDEC). Override with --gpu-mem, "
         "--gpu-bandwidth, --gpu-flops.\n";
}

std::string FindTracesDir() {
  if (std::getenv("PAGEDKV_TRACES_DIR") != nullptr) return "";
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (std::filesystem::path dir = exe.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    for (const char* rel : {"data/traces", "share/pagedkv/traces"}) {
      const std::filesystem::path candidate = dir / rel;
      if (std::filesystem::is_directory(candidate / "azure2023", ec)) return candidate.string();
    }
    if (dir == dir.parent_path()) break;
  }
  return "";
}

}  // namespace pagedkv::cli
