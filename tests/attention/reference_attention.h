// fp64 reference paged attention, for tests only: reads K/V through the same PagedKVView
// accessors, materializes each score row in double and applies the causal/window mask directly.
#ifndef PAGEDKV_TESTS_ATTENTION_REFERENCE_ATTENTION_H_
#define PAGEDKV_TESTS_ATTENTION_REFERENCE_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "pagedkv/attention/paged_kv_view.h"
#include "tests/attention/test_util.h"

namespace pagedkv::testing {

// q: [num_tokens, num_q_heads, head_dim]; qo_indptr == nullptr: decode (token b = sequence b).
// Returns [num_tokens, num_q_heads, head_dim] in double.
std::vector<double> ReferenceAttention(const PagedKVView& view, const TypedBuffer& q,
                                       int32_t num_q_heads, const int32_t* qo_indptr,
                                       double softmax_scale, int32_t window_tokens);

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_ATTENTION_REFERENCE_ATTENTION_H_
