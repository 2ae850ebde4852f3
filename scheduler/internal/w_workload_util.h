// Private to scheduler/: steps every workload source shares (sorting, rate scaling, truncation,
// id assignment) and the vendored-trace table.
#ifndef PAGEDKV_SCHEDULER_INTERNAL_W_WORKLOAD_UTIL_H_
#define PAGEDKV_SCHEDULER_INTERNAL_W_WORKLOAD_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv::internal {

// InvalidArgument when rate_scale <= 0 (or not finite), max_requests < 0, or a Poisson rate <= 0.
absl::Status ValidateWorkloadOptions(const WorkloadOptions& options);

// Stable sort by arrival, shift so the first arrival is 0, divide by rate_scale, keep the first
// max_requests, and number the requests 0..n-1.
void FinalizeWorkload(const WorkloadOptions& options, Workload* workload);

// The directory searched for short names: options.traces_dir, else $PAGEDKV_TRACES_DIR, else the
// compiled-in data/traces of the source tree.
std::string TracesDir(const WorkloadOptions& options);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_W_WORKLOAD_UTIL_H_
