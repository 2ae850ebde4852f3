// What `pagedkv simulate` prints: the progress bar, the comparison table of its runs (one per
// policy and router), the per-replica table of a cluster run, the GPU preset list, and where the
// vendored traces are found. The files it writes come from scheduler/metrics.h and report.h.
//
//   PrintRunTable(std::cout, results);
//   for (const PolicyRunResult& r : results) PrintReplicaTable(std::cout, r);
#ifndef PAGEDKV_TOOLS_INTERNAL_SIMULATE_OUTPUT_H_
#define PAGEDKV_TOOLS_INTERNAL_SIMULATE_OUTPUT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv::cli {

// One line redrawn in place on stderr; draws nothing when disabled (stderr not a terminal).
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void Start(std::string label);
  void Draw(double fraction);
  void Finish();

 private:
  bool enabled_;
  std::string label_;
  int last_percent_ = -1;
};

// "paged", or "paged/prefix-aware" for a run behind a router.
std::string RunLabel(const PolicySummary& s);
// What the scheduler limits were, for the rejection causes printed on stderr.
struct RejectionContext {
  int32_t max_model_len = 0;
  int64_t max_num_seqs = 0;
  int64_t max_num_batched_tokens = 0;
  double watermark = 0;
};
// One line per run on `err` when requests were rejected: how many, each cause with its count and
// the flag that changes it (max_model_len, KV memory, the watermark, the token budget, the
// sequence limit). Nothing when none was.
void PrintRejections(std::ostream& err, std::string_view command, const PolicySummary& s,
                     const RejectionContext& context);
// What loading changed in the workload, on `err`: lengths below 1 raised to 1 and malformed
// lines skipped, with their counts. Nothing when nothing was.
void PrintWorkloadNotes(std::ostream& err, std::string_view command, const Workload& workload);
void PrintRunTable(std::ostream& out, absl::Span<const PolicyRunResult> results);
// The replicas of a cluster run (nothing for a one-replica run).
void PrintReplicaTable(std::ostream& out, const PolicyRunResult& result);
// The GPU presets with their figures and sources (--list-gpus).
void PrintGpuPresets(std::ostream& out);

// The vendored traces: "" when $PAGEDKV_TRACES_DIR is set (the loader reads it); else data/traces
// found by walking up from the executable, or share/pagedkv/traces next to an installed binary;
// else "" (the path compiled into the library).
std::string FindTracesDir();

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_SIMULATE_OUTPUT_H_
