// The smallest model the scheduler tests use: 1 layer, 1 KV head, head dim 1, fp16, so one token
// is 4 bytes of KV and capacities read directly as token counts.
#ifndef PAGEDKV_TESTS_SCHEDULER_TINY_MODEL_H_
#define PAGEDKV_TESTS_SCHEDULER_TINY_MODEL_H_

#include "pagedkv/core/model_spec.h"

namespace pagedkv::testing {

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

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_SCHEDULER_TINY_MODEL_H_
