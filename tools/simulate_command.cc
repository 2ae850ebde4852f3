// `pagedkv simulate`: replays a workload (vendored trace, trace file or synthetic spec) through the
// scheduler on a virtual clock once per allocation policy (and, with --replicas N, once per
// router over N replicas), prints a comparison table and writes summary.json, timeline.csv,
// requests.csv and report.html into --out.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/input_limits.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/sizing.h"
#include "pagedkv/scheduler/cluster.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/report.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/simulator.h"
#include "pagedkv/scheduler/step_time_model.h"
#include "pagedkv/scheduler/workload.h"
#include "tools/internal/command.h"
#include "tools/internal/flag_values.h"
#include "tools/internal/simulate_output.h"
#include "tools/internal/staged_output.h"

namespace pagedkv::cli {
namespace {

constexpr std::string_view kCommand = "pagedkv simulate";

// A comma-separated list of names, each parsed by `parse`; `all` expands to every name.
template <typename T, typename ParseFn>
absl::Status ParseList(const std::string& text, const std::vector<std::string>& all_names,
                       ParseFn parse, std::vector<T>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const std::string name(part);
    if (name == "all") {
      for (const std::string& n : all_names) out->push_back(*parse(n));
      continue;
    }
    absl::StatusOr<T> kind = parse(name);
    if (!kind.ok()) return kind.status();
    if (std::find(out->begin(), out->end(), *kind) != out->end()) {
      return absl::InvalidArgumentError(absl::StrCat("'", name, "' is listed twice"));
    }
    out->push_back(*kind);
  }
  if (out->empty()) return absl::InvalidArgumentError("the list is empty");
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
  std::string routers_text = "round-robin";
  std::string out_dir = "results";
  std::string preemption = "recompute";
  std::string extent_allocator = "auto";
  std::string traces_dir;
  int64_t block_size = 16;
  int64_t max_requests = 0;
  int64_t max_num_seqs = 256;
  int64_t max_num_batched_tokens = 8192;
  int64_t max_model_len = 0;
  int64_t max_new_tokens = 0;
  int64_t seed = 1;
  int64_t replicas = 1;
  int64_t prefix_balance_slack = 16;
  double rate_scale = 1.0;
  double poisson_rate = 4.0;
  double gpu_mem_fraction = 0.9;
  double watermark = 0.01;
  double params = 0;
  double gpu_flops = 0;
  double gpu_bandwidth = 0;
  double prefix_balance_factor = 2.0;
  double remote_bandwidth = 12.5e9;
  double remote_latency_us = 500;
  uint64_t gpu_mem = 0;
  uint64_t kv_budget = 0;
  uint64_t swap_space = 4ull << 30;
  uint64_t remote_capacity = 0;
  bool json = false;
  bool skip_bad_lines = false;
  bool chunked_prefill = true;
  bool prefix_caching = true;
  bool no_report = false;
  bool quiet = false;
  bool list_gpus = false;

  FlagSet flags(std::string(kCommand),
                "Replays a workload through the scheduler on a virtual clock, once per KV "
                "allocation policy\n(and per router with --replicas N), and compares memory use, "
                "throughput and latency. Writes\nsummary.json, timeline.csv, requests.csv and "
                "report.html into --out.");
  flags.StartGroup("Workload");
  flags.AddString(
      "trace", "NAME|PATH|SPEC",
      absl::StrCat("workload: a vendored trace (", absl::StrJoin(VendoredTraceNames(), ", "),
                   "), a trace file, or synthetic:key=value,... (docs/traces.md)"),
      &trace);
  flags.AddDouble("rate-scale", "X", "divide arrival times by X (2 = twice as fast)", &rate_scale,
                  FlagSet::kShowCurrent, NumberRange::Positive());
  flags.AddInt("max-requests", "N", "keep only the first N requests (0 = all)", &max_requests, 0);
  flags.AddDouble("poisson-rate", "REQ/S", "arrival rate for traces without arrival times",
                  &poisson_rate, FlagSet::kShowCurrent, NumberRange::Positive());
  flags.AddInt("seed", "N", "seed for beam choices and generated arrivals", &seed, 0);
  flags.AddBool("skip-bad-lines", "skip malformed trace lines (counted) instead of failing",
                &skip_bad_lines);
  flags.AddString("traces-dir", "DIR", "directory of the vendored traces", &traces_dir,
                  "found from the executable");

  flags.StartGroup("Model and hardware");
  flags.AddString("model", "NAME|PATH", "model preset or model JSON file", &model_name);
  flags.AddDouble("params", "N", "parameter count for a model without a known one (7e9)", &params,
                  "known for presets", NumberRange::Positive());
  flags.AddInt("max-model-len", "TOKENS",
               "longest request (prompt + output) served; longer ones are rejected and counted "
               "(0 = the model's context length)",
               &max_model_len, 0, INT32_MAX);
  flags.AddString("gpu", "NAME",
                  absl::StrCat("GPU preset: ", absl::StrJoin(GpuSpec::PresetNames(), ", ")),
                  &gpu_name);
  flags.AddBool("list-gpus", "list the GPU presets with their figures and sources, and exit",
                &list_gpus);
  flags.AddBytes("gpu-mem", "BYTES", "GPU memory, e.g. 40GiB or 48GB", &gpu_mem, "the preset's",
                 /*min_bytes=*/1);
  flags.AddRate("gpu-bandwidth", "RATE", "GPU memory bandwidth, e.g. 1.555TB/s", &gpu_bandwidth,
                "the preset's");
  flags.AddFlops("gpu-flops", "FLOP/S", "dense FP16/BF16 FLOP/s, e.g. 312e12 or 312T", &gpu_flops,
                 "the preset's");
  flags.AddDouble("gpu-mem-fraction", "F", "fraction of GPU memory for weights + KV, in (0, 1]",
                  &gpu_mem_fraction, FlagSet::kShowCurrent, NumberRange::PositiveFraction());
  flags.AddBytes("kv-budget", "BYTES", "KV memory (overrides gpu-mem x fraction - weights)",
                 &kv_budget, "derived", /*min_bytes=*/1);

  flags.StartGroup("Policies and scheduler");
  flags.AddString(
      "policy", "LIST",
      absl::StrCat("comma-separated policies, or 'all': ", absl::StrJoin(PolicyKindNames(), ", ")),
      &policies_text);
  flags.AddInt("block-size", "TOKENS", "tokens per page (paged policy)", &block_size, 1, 1 << 20);
  flags.AddChoice("extent-allocator",
                  "extent placement of the contiguous policies; auto = buddy for orca-*, "
                  "first-fit for contiguous-*",
                  {"auto", "first-fit", "buddy"}, &extent_allocator);
  flags.AddInt("max-new-tokens", "TOKENS",
               "generation cap orca-max reserves for (0 = the workload's longest output)",
               &max_new_tokens, 0, INT32_MAX);
  flags.AddDouble("watermark", "F", "fraction of pages kept free at admission (paged), in [0, 1)",
                  &watermark, FlagSet::kShowCurrent, NumberRange::FractionBelowOne());
  flags.AddBool("prefix-caching", "share prompt pages by content (--prefix-caching=false off)",
                &prefix_caching);
  flags.AddChoice("preemption", "what a preempted request's pages do", {"recompute", "swap"},
                  &preemption);
  flags.AddBytes("swap-space", "BYTES", "simulated host swap space for --preemption swap",
                 &swap_space, "4GiB");
  flags.AddInt("max-num-seqs", "N", "sequences in the running batch", &max_num_seqs, 1, INT32_MAX);
  flags.AddInt("max-num-batched-tokens", "N", "query tokens per step", &max_num_batched_tokens, 1,
               INT32_MAX);
  flags.AddBool("chunked-prefill", "split long prompts over steps (--chunked-prefill=false off)",
                &chunked_prefill);

  flags.StartGroup("Cluster");
  flags.AddInt("replicas", "N", "replicas behind a router (each one GPU as configured)", &replicas,
               1, 4096);
  flags.AddString("router", "LIST",
                  absl::StrCat("comma-separated routers for --replicas > 1, or 'all': ",
                               absl::StrJoin(RouterKindNames(), ", ")),
                  &routers_text);
  flags.AddDouble("prefix-balance", "F",
                  "prefix-aware: skip replicas loaded above F x the least loaded one + slack",
                  &prefix_balance_factor, FlagSet::kShowCurrent, NumberRange::AtLeast(1));
  flags.AddInt("prefix-balance-slack", "N",
               "prefix-aware: the slack of --prefix-balance (requests)", &prefix_balance_slack, 0);
  flags.AddBytes("remote-capacity", "BYTES",
                 "a shared remote prefix tier of this size (0 = none), e.g. 2TB", &remote_capacity);
  flags.AddRate("remote-bandwidth", "RATE", "remote tier bandwidth per replica, e.g. 12.5GB/s",
                &remote_bandwidth);
  flags.AddDouble("remote-latency", "US", "remote tier round trip per loading step, microseconds",
                  &remote_latency_us, FlagSet::kShowCurrent, NumberRange::NonNegative());

  flags.StartGroup("Output");
  flags.AddString("out", "DIR", "output directory", &out_dir);
  flags.AddBool("json", "print summary.json to stdout instead of the table", &json);
  flags.AddBool("no-report", "do not write report.html", &no_report);
  flags.AddBool("quiet", "no progress bar", &quiet);
  AddCommonFlags(flags);
  flags.SetEpilog(
      "Sizes: GB/MB = powers of 1000, GiB/MiB = powers of 1024; rates the same per second.\n"
      "Examples:\n"
      "  pagedkv simulate --trace azure-conv --model llama-2-7b --gpu h100 "
      "--policy paged,contiguous-max --out results/\n"
      "  pagedkv simulate --trace mooncake --model llama-3.1-8b --replicas 8 --router all "
      "--policy paged\n"
      "  pagedkv simulate --trace synthetic:n=500,rate=20,prompt=fixed:512,output=fixed:128\n");
  if (int rc = ParseOrReport(flags, args, ctx); rc != kExitOk) {
    return rc == kHelpShown ? kExitOk : rc;
  }
  if (list_gpus) {
    PrintGpuPresets(ctx.out);
    return kExitOk;
  }
  if (replicas == 1 && flags.IsSet("router")) {
    return Usage(ctx, "--router",
                 absl::InvalidArgumentError("routes between replicas; add --replicas N (N > 1)"));
  }
  std::vector<PolicyKind> policies;
  if (absl::Status st =
          ParseList<PolicyKind>(policies_text, PolicyKindNames(), ParsePolicyKind, &policies);
      !st.ok()) {
    return Usage(ctx, "--policy", st);
  }
  std::vector<RouterKind> routers;
  if (absl::Status st =
          ParseList<RouterKind>(routers_text, RouterKindNames(), ParseRouterKind, &routers);
      !st.ok()) {
    return Usage(ctx, "--router", st);
  }
  if (replicas == 1) routers.resize(1);
  absl::StatusOr<ModelSpec> spec = LoadModelArg(model_name);
  if (!spec.ok()) return Usage(ctx, absl::StrCat("--model '", model_name, "'"), spec.status());
  absl::StatusOr<GpuSpec> gpu = GpuSpec::Preset(gpu_name);
  if (!gpu.ok()) return Usage(ctx, "--gpu", gpu.status());
  if (gpu_flops > 0) gpu->peak_flops_per_s = gpu_flops;
  if (gpu_bandwidth > 0) gpu->hbm_bytes_per_s = gpu_bandwidth;
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
                     absl::StrCat("--trace '", Excerpt(trace, 200),
                                  "': ", AbslView(std::string(workload.status().message())))),
        kExitUsage);
  }
  PrintWorkloadNotes(ctx.err, kCommand, *workload);

  ClusterConfig cluster;
  SimulatorConfig& cfg = cluster.replica;
  cfg.model = *spec;
  cfg.gpu = *gpu;
  cfg.compute = *compute;
  cfg.block_size_tokens = static_cast<int32_t>(block_size);
  cfg.scheduler.max_num_seqs = static_cast<int32_t>(max_num_seqs);
  cfg.scheduler.max_num_batched_tokens = static_cast<int32_t>(max_num_batched_tokens);
  cfg.scheduler.enable_chunked_prefill = chunked_prefill;
  cfg.scheduler.preemption_mode = *ParsePreemptionMode(preemption);
  cfg.extent_allocator = *ParseExtentAllocatorKind(extent_allocator);
  cfg.kv_budget_bytes = kv_budget;
  cfg.gpu_memory_bytes = gpu_mem;
  cfg.gpu_memory_fraction = gpu_mem_fraction;
  cfg.swap_space_bytes = swap_space;
  cfg.max_model_len = static_cast<int32_t>(max_model_len);
  cfg.max_new_tokens = static_cast<int32_t>(max_new_tokens);
  cfg.watermark = watermark;
  cfg.enable_prefix_caching = prefix_caching;
  cfg.seed = static_cast<uint64_t>(seed);
  cluster.num_replicas = static_cast<int32_t>(replicas);
  cluster.prefix_balance_factor = prefix_balance_factor;
  cluster.prefix_balance_slack = prefix_balance_slack;
  cluster.remote.capacity_bytes = remote_capacity;
  cluster.remote.bandwidth_bytes_per_s = remote_bandwidth;
  cluster.remote.latency_s = remote_latency_us * 1e-6;
  absl::StatusOr<SimulatorSizing> sizing = ComputeSizing(*workload, cfg);
  if (!sizing.ok()) {
    const bool len = flags.IsSet("max-model-len") &&
                     std::string(sizing.status().message()).starts_with("max_model_len");
    if (len) return Usage(ctx, "--max-model-len", sizing.status());
    return Usage(ctx, kv_budget > 0 ? "--kv-budget" : "--gpu-mem / --gpu-mem-fraction / --params",
                 sizing.status());
  }
  // Everything is checked before the first policy runs: a bad value must not surface after an
  // hour of earlier runs.
  if (sizing->capacity_tokens < 1) {
    return Usage(ctx, kv_budget > 0 ? "--kv-budget" : "--gpu-mem",
                 absl::InvalidArgumentError(absl::StrCat(
                     FormatBytes(sizing->kv_budget_bytes), " of KV memory hold no token of ",
                     FormatBytes(sizing->kv_bytes_per_token), "; give more memory")));
  }
  if (std::find(policies.begin(), policies.end(), PolicyKind::kPaged) != policies.end() &&
      block_size > sizing->capacity_tokens) {
    return Usage(ctx, "--block-size",
                 absl::InvalidArgumentError(absl::StrCat(
                     block_size, " tokens is more than the ", sizing->capacity_tokens,
                     " tokens the KV memory holds; use a smaller block or more memory")));
  }
  for (RouterKind router : routers) {
    for (PolicyKind kind : policies) {
      cfg.policy = kind;
      cluster.router = router;
      if (absl::Status st = CheckSimulation(*workload, cluster); !st.ok()) {
        return Usage(ctx, absl::StrCat("policy ", AbslView(PolicyKindName(kind))), st);
      }
    }
  }
  std::vector<std::string> files = {"summary.json", "timeline.csv", "requests.csv"};
  if (!no_report) files.push_back("report.html");
  absl::StatusOr<StagedOutput> output = StagedOutput::Create(out_dir, files);
  if (!output.ok()) return Usage(ctx, absl::StrCat("--out '", out_dir, "'"), output.status());

  const bool show_progress = !quiet && isatty(STDERR_FILENO) == 1;
  ProgressBar bar(show_progress);
  if (!json) {
    ctx.out << absl::StrFormat(
        "workload %s: %d requests over %.0fs (%s)\nmodel %s on %s%s: KV budget %s = %d tokens "
        "per GPU, max_model_len %d%s\n\n",
        workload->name, workload->requests.size(), workload->ArrivalSpanSeconds(),
        Excerpt(workload->source, 200), spec->name,
        replicas > 1 ? absl::StrCat(replicas, " x ") : "", gpu->description,
        FormatBytes(sizing->kv_budget_bytes), sizing->capacity_tokens, sizing->max_model_len,
        max_model_len == 0 && spec->max_context_tokens > 0 ? " (the model's context)" : "");
    ctx.out.flush();
  }
  const RejectionContext rejection{sizing->max_model_len, max_num_seqs, max_num_batched_tokens,
                                   watermark};
  std::vector<PolicyRunResult> results;
  for (RouterKind router : routers) {
    for (PolicyKind kind : policies) {
      cfg.policy = kind;
      cluster.router = router;
      std::string label(PolicyKindName(kind));
      if (replicas > 1) absl::StrAppend(&label, "/", AbslView(RouterKindName(router)));
      bar.Start(label);
      cfg.progress = [&bar](double f) { bar.Draw(f); };
      absl::StatusOr<PolicyRunResult> r = SimulateCluster(*workload, cluster);
      bar.Finish();
      if (!r.ok()) {
        return ReportError(
            ctx, kCommand,
            absl::Status(r.status().code(),
                         absl::StrCat(label, ": ", AbslView(std::string(r.status().message())))),
            kExitFailure);
      }
      PrintRejections(ctx.err, kCommand, r->summary, rejection);
      results.push_back(*std::move(r));
    }
  }

  SimulationInfo info;
  info.workload_name = workload->name;
  info.workload_source = workload->source;
  info.num_requests = static_cast<int64_t>(workload->requests.size());
  info.model = spec->name;
  info.gpu = gpu->name;
  info.block_size = static_cast<int32_t>(block_size);
  info.preemption_mode = preemption;
  info.max_num_seqs = static_cast<int32_t>(max_num_seqs);
  info.max_num_batched_tokens = static_cast<int32_t>(max_num_batched_tokens);
  info.kv_budget_bytes = sizing->kv_budget_bytes;
  info.max_model_len = sizing->max_model_len;
  info.seed = static_cast<uint64_t>(seed);
  info.extent_allocator = extent_allocator;
  info.num_replicas = static_cast<int32_t>(replicas);
  if (remote_capacity > 0) {
    info.remote_capacity_bytes = remote_capacity;
    info.remote_bandwidth_bytes_per_s = remote_bandwidth;
    info.remote_latency_s = remote_latency_us * 1e-6;
  }
  // All or nothing: the files are written into the staging directory and moved into --out only
  // when every one (the report included) was written.
  if (absl::Status st = WriteSimulationOutputs(output->staging_dir(), info, results); !st.ok()) {
    return ReportError(ctx, kCommand, st, kExitFailure);
  }
  if (!no_report) {
    ReportOptions report_options;
    report_options.out_path = output->StagingPath("report.html");
    absl::StatusOr<std::string> written = WriteReport(output->staging_dir(), report_options);
    if (!written.ok()) {
      return ReportError(ctx, kCommand,
                         absl::Status(written.status().code(),
                                      absl::StrCat("report.html: ", written.status().message())),
                         kExitFailure);
    }
  }
  if (absl::Status st = output->Commit(); !st.ok()) {
    return ReportError(ctx, kCommand,
                       absl::Status(st.code(), absl::StrCat("--out '", out_dir, "': ", st.message(),
                                                            "; nothing was written")),
                       kExitFailure);
  }
  if (json) {
    ctx.out << SummaryJson(info, results);
    return kExitOk;
  }
  PrintRunTable(ctx.out, results);
  for (const PolicyRunResult& r : results) PrintReplicaTable(ctx.out, r);
  ctx.out << "\nkv_use = tokens stored / KV capacity, int_fr = page tails, resv = reserved but "
             "unused,\nround = buddy blocks past their reservation, ext_fr = free holes too small "
             "for the next\nrequest (time-weighted means); prefix = prompt tokens served from the "
             "prefix cache,\nreuse = the same at first admissions only.\n";
  ctx.out << "\nwrote " << (std::filesystem::path(out_dir) / "summary.json").string() << ", "
          << "timeline.csv, requests.csv";
  if (!no_report) {
    ctx.out << "\nreport: " << (std::filesystem::path(out_dir) / "report.html").string();
  }
  ctx.out << "\n";
  return kExitOk;
}

}  // namespace pagedkv::cli
