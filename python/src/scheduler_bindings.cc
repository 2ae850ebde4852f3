// Bindings of scheduler/: KV-cache policies, the continuous-batching Scheduler, workloads and the
// Simulator.
//
// Ownership: a KvCachePolicy is owned by its Python object; a Scheduler keeps its policy alive
// (keep_alive), and KvCachePolicy.block_manager() returns a reference that keeps the policy alive.
// The paged policy's BlockManager is metadata only by default (PolicyConfig.gpu_tier = VIRTUAL);
// with gpu_tier GPU or HOST its pools hold real memory and an engine computes K/V in them
// (python/pagedkv/engine), or an engine keeps its own arrays indexed by the manager's block ids
// (examples/python_engine.py).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "array_util.h"
#include "common.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/simulator.h"
#include "pagedkv/scheduler/step_time_model.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv::python {
namespace {

// Sets the fields named by `kwargs` on a freshly built T (TypeError for an unknown field).
template <typename T>
T FromKwargs(const py::kwargs& kwargs, const char* type_name) {
  py::object self = py::cast(T());
  for (const auto& item : kwargs) {
    const std::string key = item.first.cast<std::string>();
    if (!py::hasattr(self, key.c_str())) {
      throw py::type_error(std::string(type_name) + " has no field '" + key + "'");
    }
    self.attr(key.c_str()) = item.second;
  }
  return self.cast<T>();
}

}  // namespace

void BindScheduler(py::module_& m) {
  // ---- Policies
  // -----------------------------------------------------------------------------------
  py::enum_<PolicyKind> kind(m, "PolicyKind", "How the Scheduler places KV in GPU memory.");
  kind.value("PAGED", PolicyKind::kPaged)
      .value("CONTIGUOUS_MAX", PolicyKind::kContiguousMax)
      .value("CONTIGUOUS_REALLOC", PolicyKind::kContiguousRealloc)
      .value("ORCA_MAX", PolicyKind::kOrcaMax)
      .value("ORCA_POW2", PolicyKind::kOrcaPow2)
      .value("ORCA_ORACLE", PolicyKind::kOrcaOracle);
  kind.def(py::init([](const std::string& name) { return ValueOrThrow(ParsePolicyKind(name)); }),
           py::arg("name"), "Parses 'paged', 'contiguous-max', ... (KeyError for others).");
  kind.def_property_readonly("label", [](PolicyKind k) { return std::string(PolicyKindName(k)); });
  py::implicitly_convertible<py::str, PolicyKind>();

  py::class_<PolicyConfig>(m, "PolicyConfig",
                           "Configuration of a KV-cache policy (make_kv_cache_policy).\n\n"
                           "    cfg = pagedkv.PolicyConfig(model=spec, capacity_tokens=4096,\n"
                           "                               block_size_tokens=16)")
      .def(py::init(
               [](const py::kwargs& kw) { return FromKwargs<PolicyConfig>(kw, "PolicyConfig"); }),
           "Keyword arguments set the fields of the same name.")
      .def_readwrite("kind", &PolicyConfig::kind)
      .def_readwrite("model", &PolicyConfig::model)
      .def_readwrite("block_size_tokens", &PolicyConfig::block_size_tokens)
      .def_readwrite("capacity_tokens", &PolicyConfig::capacity_tokens,
                     "GPU KV budget in tokens (paged: blocks = capacity / block size)")
      .def_readwrite("host_capacity_tokens", &PolicyConfig::host_capacity_tokens,
                     "paged swap space in tokens; 0 = no swap")
      .def_readwrite("gpu_tier", &PolicyConfig::gpu_tier,
                     "paged: tier of the manager's GPU pool; VIRTUAL (metadata only, the "
                     "default), or GPU / HOST for an engine that computes K/V in the pool")
      .def_readwrite("max_model_len", &PolicyConfig::max_model_len)
      .def_readwrite("max_new_tokens", &PolicyConfig::max_new_tokens)
      .def_readwrite("watermark", &PolicyConfig::watermark)
      .def_readwrite("enable_prefix_caching", &PolicyConfig::enable_prefix_caching);

  py::class_<AdmitRequest>(m, "AdmitRequest")
      .def(py::init(
          [](const py::kwargs& kw) { return FromKwargs<AdmitRequest>(kw, "AdmitRequest"); }))
      .def_readwrite("prompt_tokens", &AdmitRequest::prompt_tokens)
      .def_readwrite("output_tokens", &AdmitRequest::output_tokens)
      .def_readwrite("stored_tokens", &AdmitRequest::stored_tokens)
      .def_readwrite("num_seqs", &AdmitRequest::num_seqs)
      .def_readwrite("max_chunk_tokens", &AdmitRequest::max_chunk_tokens,
                     "longest prefill chunk of one step; 0 = the whole prompt at once");
  py::class_<AdmitCheck>(m, "AdmitCheck")
      .def_readonly("fits", &AdmitCheck::fits)
      .def_readonly("ever_fits", &AdmitCheck::ever_fits)
      .def_readonly("cached_tokens", &AdmitCheck::cached_tokens);
  py::class_<KvMemoryStats>(m, "KvMemoryStats", "Memory state in tokens of KV (all layers).")
      .def_readonly("capacity_tokens", &KvMemoryStats::capacity_tokens)
      .def_readonly("used_tokens", &KvMemoryStats::used_tokens)
      .def_readonly("reserved_unused_tokens", &KvMemoryStats::reserved_unused_tokens)
      .def_readonly("internal_frag_tokens", &KvMemoryStats::internal_frag_tokens)
      .def_readonly("external_frag_tokens", &KvMemoryStats::external_frag_tokens)
      .def_readonly("shared_saved_tokens", &KvMemoryStats::shared_saved_tokens)
      .def_readonly("cached_tokens", &KvMemoryStats::cached_tokens);
  py::class_<KvPolicyCounters>(m, "KvPolicyCounters", "Running totals since the policy was made.")
      .def_readonly("copy_bytes", &KvPolicyCounters::copy_bytes)
      .def_readonly("swap_out_bytes", &KvPolicyCounters::swap_out_bytes)
      .def_readonly("swap_in_bytes", &KvPolicyCounters::swap_in_bytes)
      .def_readonly("prefix_query_tokens", &KvPolicyCounters::prefix_query_tokens)
      .def_readonly("prefix_hit_tokens", &KvPolicyCounters::prefix_hit_tokens);

  py::class_<KvCachePolicy, std::unique_ptr<KvCachePolicy>>(
      m, "KvCachePolicy",
      "A KV placement policy (make_kv_cache_policy). The Scheduler drives it; Python reads its "
      "state.")
      .def_property_readonly("kind", &KvCachePolicy::kind)
      .def(
          "can_admit",
          [](KvCachePolicy& p, const AdmitRequest& r, const py::object& tokens) {
            const IntArg<int32_t> ids(tokens, {"tokens", Rank::kVector});
            return p.CanAdmit(r, ids.span());
          },
          py::arg("request"), py::arg("tokens"))
      .def("can_append", &KvCachePolicy::CanAppend, py::arg("seq_id"), py::arg("num_tokens") = 1)
      .def("supports_swap", &KvCachePolicy::SupportsSwap)
      .def("allocates_prefill_by_chunk", &KvCachePolicy::AllocatesPrefillByChunk,
           "True when the scheduler gives a prefill its slots one chunk at a time (paged policy "
           "of a model with sliding-window layers).")
      .def(
          "memory_stats",
          [](const KvCachePolicy& p, const AdmitRequest* next) { return p.MemoryStats(next); },
          py::arg("next_admission") = nullptr)
      .def("counters", &KvCachePolicy::counters)
      .def("block_manager", &KvCachePolicy::block_manager,
           py::return_value_policy::reference_internal,
           "The BlockManager of a paged policy (its GPU pool on PolicyConfig.gpu_tier: "
           "metadata only by default), else None. The reference keeps the policy alive.")
      .def("check_invariants", [](const KvCachePolicy& p) { ThrowIfError(p.CheckInvariants()); });
  m.def(
      "make_kv_cache_policy",
      [](const PolicyConfig& c) { return ValueOrThrow(MakeKvCachePolicy(c)); }, py::arg("config"),
      "Builds a policy; ValueError for a bad config.");
  m.def("policy_kind_names", &PolicyKindNames);

  // ---- Scheduler
  // ----------------------------------------------------------------------------------
  py::enum_<PreemptionMode> mode(m, "PreemptionMode",
                                 "RECOMPUTE frees a preempted request's pages; SWAP moves them to "
                                 "host memory (falls back to recompute without host space).");
  mode.value("RECOMPUTE", PreemptionMode::kRecompute).value("SWAP", PreemptionMode::kSwap);
  mode.def(
      py::init([](const std::string& name) { return ValueOrThrow(ParsePreemptionMode(name)); }),
      py::arg("name"));
  py::implicitly_convertible<py::str, PreemptionMode>();

  py::class_<SchedulerConfig>(m, "SchedulerConfig")
      .def(py::init([](const py::kwargs& kw) {
             return FromKwargs<SchedulerConfig>(kw, "SchedulerConfig");
           }),
           "Keyword arguments set the fields of the same name.")
      .def_readwrite("max_num_seqs", &SchedulerConfig::max_num_seqs)
      .def_readwrite("max_num_batched_tokens", &SchedulerConfig::max_num_batched_tokens)
      .def_readwrite("enable_chunked_prefill", &SchedulerConfig::enable_chunked_prefill)
      .def_readwrite("preemption_mode", &SchedulerConfig::preemption_mode)
      .def("validate", [](const SchedulerConfig& c) { ThrowIfError(c.Validate()); });

  py::class_<SchedulerRequest>(m, "SchedulerRequest",
                               "A request: prompt token ids, tokens to generate, n or beams.")
      .def(py::init([](uint64_t request_id, std::vector<TokenId> prompt, int32_t max_output_tokens,
                       int32_t num_samples, int32_t beam_width) {
             SchedulerRequest r;
             r.request_id = request_id;
             r.prompt = std::move(prompt);
             r.max_output_tokens = max_output_tokens;
             r.num_samples = num_samples;
             r.beam_width = beam_width;
             return r;
           }),
           py::arg("request_id"), py::arg("prompt"), py::arg("max_output_tokens") = 1,
           py::arg("num_samples") = 1, py::arg("beam_width") = 1)
      .def_readwrite("request_id", &SchedulerRequest::request_id)
      .def_readwrite("prompt", &SchedulerRequest::prompt)
      .def_readwrite("max_output_tokens", &SchedulerRequest::max_output_tokens)
      .def_readwrite("num_samples", &SchedulerRequest::num_samples)
      .def_readwrite("beam_width", &SchedulerRequest::beam_width);

  py::class_<ScheduledSeq>(m, "ScheduledSeq", "One sequence's share of a step.")
      .def_readonly("seq_id", &ScheduledSeq::seq_id)
      .def_readonly("request_id", &ScheduledSeq::request_id)
      .def_readonly("num_query_tokens", &ScheduledSeq::num_query_tokens,
                    "tokens computed this step (prefill chunk or 1)")
      .def_readonly("num_context_tokens", &ScheduledSeq::num_context_tokens,
                    "tokens already computed before this step")
      .def_readonly("is_prefill", &ScheduledSeq::is_prefill)
      .def_readonly("num_samples", &ScheduledSeq::num_samples,
                    "tokens the engine samples for this entry (0, 1 or the group width)")
      .def("__repr__", [](const ScheduledSeq& s) {
        return "ScheduledSeq(seq_id=" + std::to_string(s.seq_id) +
               ", request_id=" + std::to_string(s.request_id) +
               ", num_query_tokens=" + std::to_string(s.num_query_tokens) +
               ", num_context_tokens=" + std::to_string(s.num_context_tokens) +
               ", num_samples=" + std::to_string(s.num_samples) + ")";
      });

  py::class_<SchedulerOutput>(m, "SchedulerOutput",
                              "What one step runs (scheduled) and what memory it moves "
                              "(cache_ops, executed before the model runs).")
      .def_readonly("step", &SchedulerOutput::step)
      .def_readonly("scheduled", &SchedulerOutput::scheduled, "list of ScheduledSeq (a copy)")
      .def_readonly("cache_ops", &SchedulerOutput::cache_ops,
                    "CacheOps of the step (a reference that keeps this output alive)")
      .def_readonly("preempted_seqs", &SchedulerOutput::preempted_seqs)
      .def_readonly("preempted_requests", &SchedulerOutput::preempted_requests)
      .def_readonly("swapped_in_requests", &SchedulerOutput::swapped_in_requests)
      .def_readonly("rejected_requests", &SchedulerOutput::rejected_requests)
      .def_property_readonly(
          "rejection_causes",
          [](const SchedulerOutput& o) {
            std::vector<std::string> causes;
            for (RejectCause c : o.rejection_causes) causes.emplace_back(RejectCauseName(c));
            return causes;
          },
          "why each of rejected_requests was rejected: 'too_long', 'memory', 'watermark', "
          "'token_budget' or 'max_num_seqs'")
      .def_readonly("finished_requests", &SchedulerOutput::finished_requests)
      .def_readonly("num_batched_tokens", &SchedulerOutput::num_batched_tokens)
      .def_readonly("num_prefill_tokens", &SchedulerOutput::num_prefill_tokens)
      .def_readonly("num_decode_tokens", &SchedulerOutput::num_decode_tokens)
      .def_readonly("num_cached_prompt_tokens", &SchedulerOutput::num_cached_prompt_tokens)
      .def_readonly("copy_bytes", &SchedulerOutput::copy_bytes)
      .def_readonly("swap_bytes", &SchedulerOutput::swap_bytes)
      .def("empty", &SchedulerOutput::empty);

  py::class_<StepCompletion>(m, "StepCompletion")
      .def_readonly("first_token_requests", &StepCompletion::first_token_requests)
      .def_readonly("finished_requests", &StepCompletion::finished_requests)
      .def_readonly("tokens_generated", &StepCompletion::tokens_generated);

  py::class_<Scheduler>(m, "Scheduler",
                        "FCFS continuous batching over a KvCachePolicy. Deterministic (no clock, "
                        "no threads).\n\n"
                        "    sched = pagedkv.Scheduler(pagedkv.SchedulerConfig(), policy)\n"
                        "    sched.add_request(pagedkv.SchedulerRequest(7, prompt, 16))\n"
                        "    while sched.has_work():\n"
                        "        out = sched.step()          # run the model on out.scheduled\n"
                        "        sched.complete_step(out, sampled_tokens)")
      .def(py::init([](const SchedulerConfig& c, KvCachePolicy* policy) {
             ThrowIfError(c.Validate());
             return std::make_unique<Scheduler>(c, policy);
           }),
           py::arg("config"), py::arg("policy"), py::keep_alive<1, 3>(),
           "The scheduler keeps `policy` alive. ValueError for a bad config.")
      .def(
          "add_request",
          [](Scheduler& s, SchedulerRequest r) { ThrowIfError(s.AddRequest(std::move(r))); },
          py::arg("request"),
          "Queues a request (FCFS). ValueError for an empty prompt or bad widths; RuntimeError "
          "for a known id.")
      .def(
          "step", [](Scheduler& s) { return ValueOrThrow(s.Step()); },
          "Plans the next step (a SchedulerOutput).")
      .def(
          "complete_step",
          [](Scheduler& s, const SchedulerOutput& out, std::vector<TokenId> tokens,
             const py::object& beams) {
            StepSamples samples;
            samples.tokens = std::move(tokens);
            if (!beams.is_none()) {
              for (const auto& item : beams.cast<py::dict>()) {
                BeamChoice c;
                c.request_id = item.first.cast<uint64_t>();
                c.parent_index = item.second.cast<std::vector<int32_t>>();
                samples.beams.push_back(std::move(c));
              }
            }
            return ValueOrThrow(s.CompleteStep(out, samples));
          },
          py::arg("out"), py::arg("tokens"), py::arg("beams") = py::none(),
          "Applies the sampled tokens: out.scheduled[i].num_samples per entry, flattened. "
          "beams: {request_id: [parent index of each new beam]} for beam-search requests. "
          "ValueError (nothing changes) when `out` is not the last step()'s output or was "
          "already completed, or when the tokens or beams do not match it.")
      .def("has_work", &Scheduler::HasWork)
      .def_property_readonly("num_waiting", &Scheduler::num_waiting)
      .def_property_readonly("num_running", &Scheduler::num_running)
      .def_property_readonly("num_swapped", &Scheduler::num_swapped)
      .def_property_readonly("num_running_seqs", &Scheduler::num_running_seqs)
      .def_property_readonly("total_preemptions", &Scheduler::total_preemptions)
      .def("num_preemptions", &Scheduler::NumPreemptions, py::arg("request_id"))
      .def(
          "sequence_tokens",
          [](const Scheduler& s, SeqId seq) { return ValueOrThrow(s.SequenceTokens(seq)); },
          py::arg("seq_id"), "Prompt + generated tokens of a live sequence; KeyError otherwise.")
      .def(
          "request_seq_ids",
          [](const Scheduler& s, uint64_t r) { return ValueOrThrow(s.RequestSeqIds(r)); },
          py::arg("request_id"))
      .def_property_readonly("config", &Scheduler::config)
      .def_property_readonly("policy", &Scheduler::policy,
                             py::return_value_policy::reference_internal)
      .def("check_invariants", [](const Scheduler& s) { ThrowIfError(s.CheckInvariants()); });

  // ---- Workloads, step-time model, Simulator
  // -------------------------------------------------------
  py::class_<GpuSpec>(m, "GpuSpec", "A GPU for the step-time model (GpuSpec.preset('h100')).")
      .def(py::init<>())
      .def_static(
          "preset", [](const std::string& n) { return ValueOrThrow(GpuSpec::Preset(n)); },
          py::arg("name"))
      .def_static("preset_names", &GpuSpec::PresetNames)
      .def_readwrite("name", &GpuSpec::name)
      .def_readwrite("description", &GpuSpec::description)
      .def_readwrite("peak_flops_per_s", &GpuSpec::peak_flops_per_s)
      .def_readwrite("hbm_bytes_per_s", &GpuSpec::hbm_bytes_per_s)
      .def_readwrite("host_link_bytes_per_s", &GpuSpec::host_link_bytes_per_s)
      .def_readwrite("memory_bytes", &GpuSpec::memory_bytes)
      .def_readwrite("step_overhead_s", &GpuSpec::step_overhead_s);
  py::class_<ModelCompute>(m, "ModelCompute", "Compute shape of a model for the step-time model.")
      .def(py::init<>())
      .def_static(
          "for_model", [](const ModelSpec& s) { return ValueOrThrow(ModelCompute::ForModel(s)); },
          py::arg("spec"))
      .def_static("from_params", &ModelCompute::FromParams, py::arg("spec"), py::arg("num_params"),
                  py::arg("bytes_per_param"))
      .def_readwrite("num_params", &ModelCompute::num_params)
      .def_readwrite("weight_bytes", &ModelCompute::weight_bytes)
      .def_readwrite("num_attention_layers", &ModelCompute::num_attention_layers)
      .def_readwrite("q_width", &ModelCompute::q_width)
      .def_readwrite("kv_bytes_per_token", &ModelCompute::kv_bytes_per_token);

  py::class_<Request>(m, "Request", "One request of a Workload.")
      .def(py::init([](const py::kwargs& kw) { return FromKwargs<Request>(kw, "Request"); }))
      .def_readwrite("request_id", &Request::request_id)
      .def_readwrite("arrival_time_s", &Request::arrival_time_s)
      .def_readwrite("prompt_tokens", &Request::prompt_tokens)
      .def_readwrite("output_tokens", &Request::output_tokens)
      .def_readwrite("prefix_block_hashes", &Request::prefix_block_hashes)
      .def_readwrite("hash_block_tokens", &Request::hash_block_tokens)
      .def_readwrite("num_samples", &Request::num_samples)
      .def_readwrite("beam_width", &Request::beam_width);
  py::class_<Workload>(m, "Workload", "Requests sorted by arrival (load_workload).")
      .def(py::init<>())
      .def_readwrite("name", &Workload::name)
      .def_readwrite("requests", &Workload::requests)
      .def_readwrite("source", &Workload::source)
      .def("validate", [](const Workload& w) { ThrowIfError(w.Validate()); })
      .def("total_prompt_tokens", &Workload::TotalPromptTokens)
      .def("total_output_tokens", &Workload::TotalOutputTokens)
      .def("__len__", [](const Workload& w) { return w.requests.size(); });
  m.def(
      "load_workload",
      [](const std::string& spec, double rate_scale, int64_t max_requests, uint64_t seed) {
        WorkloadOptions o;
        o.rate_scale = rate_scale;
        o.max_requests = max_requests;
        o.seed = seed;
        return ValueOrThrow(LoadWorkload(spec, o));
      },
      py::arg("spec"), py::kw_only(), py::arg("rate_scale") = 1.0, py::arg("max_requests") = 0,
      py::arg("seed") = 1,
      "A vendored trace name, a trace file, or a synthetic generator spec (see docs/traces.md).");
  m.def("vendored_trace_names", &VendoredTraceNames);

  py::class_<SimulatorConfig>(m, "SimulatorConfig")
      .def(py::init([](const py::kwargs& kw) {
             return FromKwargs<SimulatorConfig>(kw, "SimulatorConfig");
           }),
           "Keyword arguments set the fields of the same name.")
      .def_readwrite("model", &SimulatorConfig::model)
      .def_readwrite("gpu", &SimulatorConfig::gpu)
      .def_readwrite("compute", &SimulatorConfig::compute)
      .def_readwrite("policy", &SimulatorConfig::policy)
      .def_readwrite("block_size_tokens", &SimulatorConfig::block_size_tokens)
      .def_readwrite("scheduler", &SimulatorConfig::scheduler)
      .def_readwrite("kv_budget_bytes", &SimulatorConfig::kv_budget_bytes)
      .def_readwrite("gpu_memory_bytes", &SimulatorConfig::gpu_memory_bytes)
      .def_readwrite("gpu_memory_fraction", &SimulatorConfig::gpu_memory_fraction)
      .def_readwrite("swap_space_bytes", &SimulatorConfig::swap_space_bytes)
      .def_readwrite("max_model_len", &SimulatorConfig::max_model_len)
      .def_readwrite("max_new_tokens", &SimulatorConfig::max_new_tokens)
      .def_readwrite("watermark", &SimulatorConfig::watermark)
      .def_readwrite("enable_prefix_caching", &SimulatorConfig::enable_prefix_caching)
      .def_readwrite("seed", &SimulatorConfig::seed)
      .def_readwrite("max_timeline_rows", &SimulatorConfig::max_timeline_rows);

  py::class_<PolicySummary>(m, "PolicySummary", "summary.json's per-policy numbers.")
      .def_readonly("policy", &PolicySummary::policy)
      .def_readonly("requests_total", &PolicySummary::requests_total)
      .def_readonly("requests_completed", &PolicySummary::requests_completed)
      .def_readonly("requests_rejected", &PolicySummary::requests_rejected)
      .def_readonly("makespan_s", &PolicySummary::makespan_s)
      .def_readonly("throughput_requests_per_s", &PolicySummary::throughput_requests_per_s)
      .def_readonly("throughput_tokens_per_s", &PolicySummary::throughput_tokens_per_s)
      .def_readonly("ttft_p50_s", &PolicySummary::ttft_p50_s)
      .def_readonly("ttft_p99_s", &PolicySummary::ttft_p99_s)
      .def_readonly("tpot_p50_s", &PolicySummary::tpot_p50_s)
      .def_readonly("tpot_p99_s", &PolicySummary::tpot_p99_s)
      .def_readonly("mean_batch_size", &PolicySummary::mean_batch_size)
      .def_readonly("max_batch_size", &PolicySummary::max_batch_size)
      .def_readonly("kv_utilization_mean", &PolicySummary::kv_utilization_mean)
      .def_readonly("internal_fragmentation_mean", &PolicySummary::internal_fragmentation_mean)
      .def_readonly("prefix_hit_rate", &PolicySummary::prefix_hit_rate)
      .def_readonly("preemptions", &PolicySummary::preemptions)
      .def_readonly("swap_bytes", &PolicySummary::swap_bytes)
      .def_readonly("copy_bytes", &PolicySummary::copy_bytes)
      .def_readonly("capacity_tokens", &PolicySummary::capacity_tokens)
      .def_readonly("num_steps", &PolicySummary::num_steps);
  py::class_<RequestRecord>(m, "RequestRecord", "One request's fate (virtual seconds).")
      .def_readonly("request_id", &RequestRecord::request_id)
      .def_readonly("arrival_s", &RequestRecord::arrival_s)
      .def_readonly("first_token_s", &RequestRecord::first_token_s)
      .def_readonly("finish_s", &RequestRecord::finish_s)
      .def_readonly("preemptions", &RequestRecord::preemptions)
      .def_readonly("rejected", &RequestRecord::rejected);
  py::class_<PolicyRunResult>(m, "PolicyRunResult")
      .def_readonly("summary", &PolicyRunResult::summary)
      .def_readonly("requests", &PolicyRunResult::requests);
  m.def(
      "simulate",
      [](const Workload& w, const SimulatorConfig& c) {
        // Copies taken with the GIL held: another thread may replace w.requests (or change the
        // config) while the simulation runs without the GIL; it reads only its own copies.
        const Workload workload = w;
        SimulatorConfig config = c;
        ThrowIfError(workload.Validate());
        // Ctrl-C: the run polls for signals now and then (briefly taking the GIL); a handler that
        // raises (KeyboardInterrupt) stops it and its exception propagates.
        config.progress = nullptr;
        config.cancel = [] {
          py::gil_scoped_acquire gil;
          return PyErr_CheckSignals() != 0;
        };
        absl::StatusOr<PolicyRunResult> r;
        {
          py::gil_scoped_release release;
          r = Simulate(workload, config);
        }
        if (absl::IsCancelled(r.status()) && PyErr_Occurred() != nullptr) {
          throw py::error_already_set();
        }
        return ValueOrThrow(std::move(r));
      },
      py::arg("workload"), py::arg("config"),
      "Replays the workload through the Scheduler on a virtual clock (GPU memory is metadata "
      "only). ValueError for an invalid workload (Workload.validate(): NaN, negative or unsorted "
      "arrivals, bad lengths); Ctrl-C interrupts it (KeyboardInterrupt). The GIL is released "
      "while it runs, on copies of the workload and config.");
}

}  // namespace pagedkv::python
