// `pagedkv simulate`: replays a workload (vendored trace, trace file or synthetic spec) through the
// scheduler on a virtual clock once per allocation policy, prints a comparison table and writes
// summary.json, timeline.csv, requests.csv and report.html into --out.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/sizing.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/report.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/simulator.h"
#include "pagedkv/scheduler/step_time_model.h"
#include "pagedkv/scheduler/workload.h"
#include "tools/internal/command.h"

namespace pagedkv::cli {
namespace {

constexpr std::string_view kCommand = "pagedkv simulate";

// The vendored traces: $PAGEDKV_TRACES_DIR wins (the loader reads it); else data/traces found by
// walking up from the executable (build trees sit inside the source tree), else share/pagedkv/
// traces next to an installed binary; else empty (the path compiled into the library).
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

// Progress on a terminal only: one line redrawn in place on stderr.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void Start(std::string label) {
    label_ = std::move(label);
    last_percent_ = -1;
    Draw(0.0);
  }
  void Draw(double fraction) {
    if (!enabled_) return;
    const int percent = static_cast<int>(fraction * 100.0);
    if (percent == last_percent_) return;
    last_percent_ = percent;
    constexpr int kWidth = 30;
    const int filled = percent * kWidth / 100;
    std::fprintf(stderr, "\r%-20s [%s%s] %3d%%", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), percent);
    std::fflush(stderr);
  }
  void Finish() {
    if (!enabled_) return;
    std::fprintf(stderr, "\r%*s\r", 60, "");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::string label_;
  int last_percent_ = -1;
};

std::string Pct(double fraction) { return absl::StrFormat("%.1f%%", 100.0 * fraction); }

std::string Secs(double s) {
  if (s >= 10) return absl::StrFormat("%.1fs", s);
  if (s >= 1) return absl::StrFormat("%.2fs", s);
  return absl::StrFormat("%.0fms", s * 1e3);
}

void PrintTable(std::ostream& out, absl::Span<const PolicyRunResult> results) {
  out << absl::StrFormat("%-18s %9s %8s %9s %7s %7s %7s %7s %7s %8s %8s %8s %8s %7s\n", "policy",
                         "done", "req/s", "tok/s", "kv_use", "int_fr", "resv", "ext_fr", "batch",
                         "preempt", "ttft50", "ttft99", "tpot50", "prefix");
  for (const PolicyRunResult& r : results) {
    const PolicySummary& s = r.summary;
    out << absl::StrFormat("%-18s %9s %8.2f %9.0f %7s %7s %7s %7s %7.1f %8d %8s %8s %8s %7s\n",
                           s.policy, absl::StrCat(s.requests_completed, "/", s.requests_total),
                           s.throughput_requests_per_s, s.throughput_tokens_per_s,
                           Pct(s.kv_utilization_mean), Pct(s.internal_fragmentation_mean),
                           Pct(s.reserved_unused_mean), Pct(s.external_fragmentation_mean),
                           s.mean_batch_size, s.preemptions, Secs(s.ttft_p50_s), Secs(s.ttft_p99_s),
                           Secs(s.tpot_p50_s), Pct(s.prefix_hit_rate));
  }
}

absl::Status ParsePolicies(const std::string& text, std::vector<PolicyKind>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const std::string name(part);
    if (name == "all") {
      for (const std::string& n : PolicyKindNames()) out->push_back(*ParsePolicyKind(n));
      continue;
    }
    absl::StatusOr<PolicyKind> kind = ParsePolicyKind(name);
    if (!kind.ok()) return kind.status();
    out->push_back(*kind);
  }
  if (out->empty()) return absl::InvalidArgumentError("no policy given");
  return absl::OkStatus();
}

int Usage(const CommandContext& ctx, std::string_view what, const absl::Status& status) {
  return ReportError(ctx, kCommand,
                     absl::InvalidArgumentError(absl::StrCat(
                         AbslView(what), ": ", AbslView(std::string(status.message())))),
                     kExitUsage);
}

}  // namespace

int RunSimulateCommand(const CommandContext& ctx, absl::Span<const std::string> args) {
  std::string trace = "azure-conv";
  std::string model_name = "llama-2-7b";
  std::string gpu_name = "h100";
  std::string policies_text = "paged,contiguous-max";
  std::string out_dir = "results";
  std::string preemption = "recompute";
  std::string traces_dir;
  int64_t block_size = 16;
  int64_t max_requests = 0;
  int64_t max_num_seqs = 256;
  int64_t max_num_batched_tokens = 8192;
  int64_t max_model_len = 0;
  int64_t seed = 1;
  double rate_scale = 1.0;
  double poisson_rate = 4.0;
  double gpu_mem_fraction = 0.9;
  double watermark = 0.01;
  double params = 0;
  uint64_t gpu_mem = 0;
  uint64_t kv_budget = 0;
  uint64_t swap_space = 4ull << 30;
  bool json = false;
  bool skip_bad_lines = false;
  bool chunked_prefill = true;
  bool prefix_caching = true;
  bool no_report = false;
  bool quiet = false;

  ArgParser parser(std::string(kCommand),
                   "Replays a workload through the scheduler on a virtual clock, once per KV "
                   "allocation policy,\nand compares memory use, throughput and latency. Writes "
                   "summary.json, timeline.csv,\nrequests.csv and report.html into --out.");
  parser.AddString(
      "trace", "NAME|PATH|SPEC",
      absl::StrCat("workload: a vendored trace (", absl::StrJoin(VendoredTraceNames(), ", "),
                   "), a trace file, or synthetic:key=value,... (docs/traces.md)"),
      &trace);
  parser.AddString("model", "NAME|PATH", "model preset or model JSON file", &model_name);
  parser.AddString("gpu", "NAME",
                   absl::StrCat("GPU preset: ", absl::StrJoin(GpuSpec::PresetNames(), ", ")),
                   &gpu_name);
  parser.AddString(
      "policy", "LIST",
      absl::StrCat("comma-separated policies, or 'all': ", absl::StrJoin(PolicyKindNames(), ", ")),
      &policies_text);
  parser.AddInt("block-size", "TOKENS", "tokens per page (paged policy)", &block_size, 1, 1 << 20);
  parser.AddString("out", "DIR", "output directory", &out_dir);
  parser.AddBool("json", "print summary.json to stdout instead of the table", &json);
  parser.AddDouble("rate-scale", "X", "divide arrival times by X (2 = twice as fast)", &rate_scale);
  parser.AddInt("max-requests", "N", "keep only the first N requests (0 = all)", &max_requests, 0);
  parser.AddBool("skip-bad-lines", "skip malformed trace lines (counted) instead of failing",
                 &skip_bad_lines);
  parser.AddInt("seed", "N", "seed for beam choices and generated arrivals", &seed, 0);
  parser.AddDouble("poisson-rate", "REQ/S", "arrival rate for traces without arrival times",
                   &poisson_rate);
  parser.AddString("preemption", "MODE", "recompute | swap", &preemption);
  parser.AddInt("max-num-seqs", "N", "sequences in the running batch", &max_num_seqs, 1);
  parser.AddInt("max-num-batched-tokens", "N", "query tokens per step", &max_num_batched_tokens, 1);
  parser.AddBool("chunked-prefill", "split long prompts over steps (--chunked-prefill=false off)",
                 &chunked_prefill);
  parser.AddBool("prefix-caching", "share prompt pages by content (--prefix-caching=false off)",
                 &prefix_caching);
  parser.AddBytes("gpu-mem", "BYTES", "GPU memory (default: the preset's)", &gpu_mem, "preset");
  parser.AddDouble("gpu-mem-fraction", "F", "fraction of GPU memory for weights + KV",
                   &gpu_mem_fraction);
  parser.AddBytes("kv-budget", "BYTES", "KV memory (overrides gpu-mem x fraction - weights)",
                  &kv_budget, "derived");
  parser.AddBytes("swap-space", "BYTES", "host swap space for --preemption swap", &swap_space,
                  "4GiB");
  parser.AddDouble("params", "N", "parameter count for a model without a known one (7e9)", &params,
                   "known for presets");
  parser.AddInt("max-model-len", "TOKENS",
                "longest sequence accepted (0 = the workload's longest prompt + output)",
                &max_model_len, 0, 1 << 30);
  parser.AddDouble("watermark", "F", "fraction of pages kept free at admission (paged)",
                   &watermark);
  parser.AddString("traces-dir", "DIR", "directory of the vendored traces", &traces_dir,
                   "found from the executable");
  parser.AddBool("no-report", "do not write report.html", &no_report);
  parser.AddBool("quiet", "no progress bar", &quiet);
  AddCommonFlags(parser);
  parser.SetEpilog(
      "Examples:\n"
      "  pagedkv simulate --trace azure-conv --model llama-2-7b --gpu h100 "
      "--policy paged,contiguous-max --out results/\n"
      "  pagedkv simulate --trace mooncake --policy all --max-requests 2000 --json\n"
      "  pagedkv simulate --trace synthetic:n=500,rate=20,prompt=fixed:512,output=fixed:128\n");
  if (int rc = ParseOrReport(parser, args, ctx); rc != kExitOk) {
    return rc == kHelpShown ? kExitOk : rc;
  }
  if (rate_scale <= 0) {
    return Usage(ctx, "--rate-scale", absl::InvalidArgumentError("must be > 0"));
  }

  std::vector<PolicyKind> policies;
  if (absl::Status st = ParsePolicies(policies_text, &policies); !st.ok()) {
    return Usage(ctx, "--policy", st);
  }
  absl::StatusOr<ModelSpec> spec = LoadModelArg(model_name);
  if (!spec.ok()) return Usage(ctx, absl::StrCat("--model '", model_name, "'"), spec.status());
  absl::StatusOr<GpuSpec> gpu = GpuSpec::Preset(gpu_name);
  if (!gpu.ok()) return Usage(ctx, "--gpu", gpu.status());
  absl::StatusOr<PreemptionMode> mode = ParsePreemptionMode(preemption);
  if (!mode.ok()) return Usage(ctx, "--preemption", mode.status());
  absl::StatusOr<ModelCompute> compute =
      params > 0 ? ModelCompute::FromParams(*spec, params, 2.0) : ModelCompute::ForModel(*spec);
  if (!compute.ok()) return Usage(ctx, "--model", compute.status());

  WorkloadOptions wopts;
  wopts.rate_scale = rate_scale;
  wopts.max_requests = max_requests;
  wopts.skip_bad_lines = skip_bad_lines;
  wopts.poisson_rate_per_s = poisson_rate;
  wopts.seed = static_cast<uint64_t>(seed);
  wopts.traces_dir = traces_dir.empty() ? FindTracesDir() : traces_dir;
  absl::StatusOr<Workload> workload = LoadWorkload(trace, wopts);
  if (!workload.ok()) {
    return ReportError(
        ctx, kCommand,
        absl::Status(workload.status().code(),
                     absl::StrCat("--trace '", trace,
                                  "': ", AbslView(std::string(workload.status().message())))),
        kExitUsage);
  }
  if (workload->skipped_lines > 0) {
    ctx.err << absl::StrFormat("%s: skipped %d malformed lines of %s\n", kCommand,
                               workload->skipped_lines, workload->source);
  }

  SimulatorConfig cfg;
  cfg.model = *spec;
  cfg.gpu = *gpu;
  cfg.compute = *compute;
  cfg.block_size_tokens = static_cast<int32_t>(block_size);
  cfg.scheduler.max_num_seqs = static_cast<int32_t>(max_num_seqs);
  cfg.scheduler.max_num_batched_tokens = static_cast<int32_t>(max_num_batched_tokens);
  cfg.scheduler.enable_chunked_prefill = chunked_prefill;
  cfg.scheduler.preemption_mode = *mode;
  cfg.kv_budget_bytes = kv_budget;
  cfg.gpu_memory_bytes = gpu_mem;
  cfg.gpu_memory_fraction = gpu_mem_fraction;
  cfg.swap_space_bytes = swap_space;
  cfg.max_model_len = static_cast<int32_t>(max_model_len);
  cfg.watermark = watermark;
  cfg.enable_prefix_caching = prefix_caching;
  cfg.seed = static_cast<uint64_t>(seed);
  absl::StatusOr<SimulatorSizing> sizing = ComputeSizing(*workload, cfg);
  if (!sizing.ok()) return ReportError(ctx, kCommand, sizing.status(), kExitUsage);

  const bool show_progress = !quiet && isatty(STDERR_FILENO) == 1;
  ProgressBar bar(show_progress);
  if (!json) {
    ctx.out << absl::StrFormat(
        "workload %s: %d requests over %.0fs (%s)\nmodel %s on %s: KV budget %s = %d tokens, "
        "max_model_len %d\n\n",
        workload->name, workload->requests.size(), workload->ArrivalSpanSeconds(), workload->source,
        spec->name, gpu->description, FormatBytes(sizing->kv_budget_bytes), sizing->capacity_tokens,
        sizing->max_model_len);
    ctx.out.flush();
  }
  std::vector<PolicyRunResult> results;
  for (PolicyKind kind : policies) {
    cfg.policy = kind;
    const std::string name(PolicyKindName(kind));
    bar.Start(name);
    cfg.progress = [&bar](double f) { bar.Draw(f); };
    absl::StatusOr<PolicyRunResult> r = Simulate(*workload, cfg);
    bar.Finish();
    if (!r.ok()) {
      return ReportError(ctx, kCommand,
                         absl::Status(r.status().code(),
                                      absl::StrCat("policy ", name, ": ",
                                                   AbslView(std::string(r.status().message())))),
                         kExitFailure);
    }
    if (r->summary.requests_rejected > 0) {
      ctx.err << absl::StrFormat(
          "%s: policy %s rejected %d requests that can never fit in %d tokens of KV memory "
          "(raise --kv-budget or --gpu-mem)\n",
          kCommand, name, r->summary.requests_rejected, r->summary.capacity_tokens);
    }
    results.push_back(*std::move(r));
  }

  SimulationInfo info;
  info.workload_name = workload->name;
  info.workload_source = workload->source;
  info.num_requests = static_cast<int64_t>(workload->requests.size());
  info.model = spec->name;
  info.gpu = gpu->name;
  info.block_size = static_cast<int32_t>(block_size);
  info.preemption_mode = std::string(PreemptionModeName(*mode));
  info.max_num_seqs = static_cast<int32_t>(max_num_seqs);
  info.max_num_batched_tokens = static_cast<int32_t>(max_num_batched_tokens);
  info.kv_budget_bytes = sizing->kv_budget_bytes;
  info.max_model_len = sizing->max_model_len;
  info.seed = static_cast<uint64_t>(seed);
  if (absl::Status st = WriteSimulationOutputs(out_dir, info, results); !st.ok()) {
    return ReportError(ctx, kCommand, st, kExitFailure);
  }
  std::string report_path;
  if (!no_report) {
    absl::StatusOr<std::string> written = WriteReport(out_dir);
    if (written.ok()) {
      report_path = *written;
    } else {
      PAGEDKV_LOG_WARN("report.html not written: {}", std::string(written.status().message()));
    }
  }
  if (json) {
    ctx.out << SummaryJson(info, results);
    return kExitOk;
  }
  PrintTable(ctx.out, results);
  ctx.out << absl::StrFormat(
      "\nkv_use = tokens stored / KV capacity, int_fr = page tails, resv = "
      "reserved but unused,\next_fr = free holes too small for the next "
      "request (time-weighted means); prefix = prompt tokens\nserved from "
      "the prefix cache.\n");
  ctx.out << "\nwrote " << (std::filesystem::path(out_dir) / "summary.json").string() << ", "
          << "timeline.csv, requests.csv";
  if (!report_path.empty()) ctx.out << "\nreport: " << report_path;
  ctx.out << "\n";
  return kExitOk;
}

}  // namespace pagedkv::cli
