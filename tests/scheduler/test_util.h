// Shared by the scheduler tests: the smallest model, and every policy kind as a test parameter.
#ifndef PAGEDKV_TESTS_SCHEDULER_TEST_UTIL_H_
#define PAGEDKV_TESTS_SCHEDULER_TEST_UTIL_H_

#include <algorithm>
#include <string>

#include "gtest/gtest.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv::testing {

// 1 layer, 1 KV head, head dim 1, fp16: one token is 4 bytes of KV, so capacities read directly
// as token counts.
inline ModelSpec TinyModel() {
  ModelSpec m;
  m.name = "tiny";
  m.num_q_heads = 1;
  m.num_kv_heads = 1;
  m.head_dim = 1;
  m.kv_dtype = DType::kFp16;
  m.layers = {LayerSpec::Full()};
  return m;
}

// Every policy, for INSTANTIATE_TEST_SUITE_P(..., AllPolicyKinds(), PolicyKindParamName).
inline auto AllPolicyKinds() {
  return ::testing::Values(PolicyKind::kPaged, PolicyKind::kContiguousMax,
                           PolicyKind::kContiguousRealloc, PolicyKind::kOrcaMax,
                           PolicyKind::kOrcaPow2, PolicyKind::kOrcaOracle);
}

// "contiguous-max" -> "contiguous_max": test names allow no '-'.
inline std::string PolicyKindParamName(const ::testing::TestParamInfo<PolicyKind>& info) {
  std::string name(PolicyKindName(info.param));
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_SCHEDULER_TEST_UTIL_H_
