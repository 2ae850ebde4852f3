// What `pagedkv simulate` prints: the progress bar, the comparison table of its runs (one per
// policy and router), the per-replica table of a cluster run, the GPU preset list, and where the
// vendored traces are found. The files it writes come from scheduler/metrics.h and report.h.
//
//   PrintRunTable(std::cout, results);
//   for (const PolicyRunResult& r : results) PrintReplicaTable(std::cout, r);
#ifndef PAGEDKV_TOOLS_INTERNAL_SIMULATE_OUTPUT_H_
#define PAGEDKV_TOOLS_INTERNAL_SIMULATE_OUTPUT_H_

#include <ostream>
#include <string>

#include "absl/types/span.h"
#include "pagedkv/scheduler/metrics.h"

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
