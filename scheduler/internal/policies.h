// Factories of the policy implementations behind MakeKvCachePolicy (scheduler/policy.cc).
#ifndef PAGEDKV_SCHEDULER_INTERNAL_POLICIES_H_
#define PAGEDKV_SCHEDULER_INTERNAL_POLICIES_H_

#include <memory>

#include "absl/status/statusor.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv::internal {

// contiguous-max, contiguous-realloc, orca-max, orca-pow2, orca-oracle (config validated).
std::unique_ptr<KvCachePolicy> MakeContiguousPolicy(const PolicyConfig& config);
// paged: a BlockManager on a kVirtual GPU tier (and a host tier for swap when configured).
absl::StatusOr<std::unique_ptr<KvCachePolicy>> MakePagedPolicy(const PolicyConfig& config);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_POLICIES_H_
