#include "attention/internal/cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "attention/internal/cpu_kernels.h"
#include "pagedkv/attention/half_float.h"
#include "pagedkv/core/check.h"

namespace pagedkv::attention_internal {
namespace {

// KV tokens converted per tile: 32 rows of K and V of head_dim 128 in fp32 are 32 KiB, about L1.
constexpr int32_t kTileTokens = 32;
// Query rows (tokens x heads of a group) per work item: bounds the float state of an item.
constexpr int32_t kMaxRowsPerItem = 64;

struct WorkItem {
  int32_t seq = 0;
  int32_t kv_head = 0;
  int64_t token_begin = 0;  // query rows (tokens) [token_begin, token_end) of q
  int64_t token_end = 0;
  int64_t cost = 0;  // KV tokens read, to order the largest first
};

// Per-thread buffers, reused across items and calls.
struct Scratch {
  std::vector<float> q, m, l, acc, kbuf, vbuf, scores;
  std::vector<RowRange> ranges;
  std::vector<const float*> krows, vrows;
};

float LoadAsFloat(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kFp32:
      return static_cast<const float*>(base)[i];
    case DType::kFp16:
      return Fp16BitsToFloat(static_cast<const uint16_t*>(base)[i]);
    case DType::kBf16:
      return Bf16BitsToFloat(static_cast<const uint16_t*>(base)[i]);
    default:
      PAGEDKV_CHECK_MSG(false, "unsupported query dtype reached the CPU kernel");
  }
  return 0.0f;
}

void StoreFromFloat(void* base, DType dtype, int64_t i, float v) {
  switch (dtype) {
    case DType::kFp32:
      static_cast<float*>(base)[i] = v;
      return;
    case DType::kFp16:
      static_cast<uint16_t*>(base)[i] = FloatToFp16Bits(v);
      return;
    case DType::kBf16:
      static_cast<uint16_t*>(base)[i] = FloatToBf16Bits(v);
      return;
    default:
      PAGEDKV_CHECK_MSG(false, "unsupported output dtype reached the CPU kernel");
  }
}

class Runner {
 public:
  Runner(const PagedKVView& view, const QueryBatch& q, float softmax_scale, int32_t window_tokens)
      : v_(view),
        q_(q),
        group_(q.num_q_heads / view.num_kv_heads),
        // Base-2 scores: exp(x * scale) == exp2(x * scale * log2(e)).
        q_scale_(softmax_scale * 1.4426950408889634f),
        window_(window_tokens),
        kernels_(CpuKernels()) {}

  std::vector<WorkItem> MakeItems() const {
    std::vector<WorkItem> items;
    const int32_t tokens_per_item = std::max<int32_t>(1, kMaxRowsPerItem / group_);
    for (int32_t b = 0; b < v_.batch_size; ++b) {
      const int64_t begin = q_.qo_indptr ? q_.qo_indptr[b] : b;
      const int64_t end = q_.qo_indptr ? q_.qo_indptr[b + 1] : b + 1;
      const int64_t kv_len = v_.SeqLen(b);
      for (int64_t t = begin; t < end; t += tokens_per_item) {
        const int64_t t_end = std::min<int64_t>(end, t + tokens_per_item);
        // Last query position of the chunk bounds the KV it reads.
        const int64_t last_pos = kv_len - (end - t_end) - 1;
        const int64_t cost = window_ > 0 ? std::min<int64_t>(window_, last_pos + 1) : last_pos + 1;
        for (int32_t h = 0; h < v_.num_kv_heads; ++h) items.push_back({b, h, t, t_end, cost});
      }
    }
    std::stable_sort(items.begin(), items.end(),
                     [](const WorkItem& a, const WorkItem& b) { return a.cost > b.cost; });
    return items;
  }

  void Run(const WorkItem& w, Scratch& s) const {
    const int32_t d = v_.head_dim;
    const int32_t num_tokens = static_cast<int32_t>(w.token_end - w.token_begin);
    const int32_t rows = num_tokens * group_;
    const int64_t q_begin = q_.qo_indptr ? q_.qo_indptr[w.seq] : w.seq;
    const int64_t q_end = q_.qo_indptr ? q_.qo_indptr[w.seq + 1] : w.seq + 1;
    const int32_t kv_len = v_.SeqLen(w.seq);
    // Position of query token q_begin: the query tokens are the last ones of the sequence.
    const int64_t first_pos = kv_len - (q_end - q_begin);

    s.q.resize(size_t(rows) * d);
    s.acc.assign(size_t(rows) * d, 0.0f);
    s.m.assign(rows, -std::numeric_limits<float>::infinity());
    s.l.assign(rows, 0.0f);
    s.ranges.resize(rows);
    s.kbuf.resize(size_t(kTileTokens) * d);
    s.vbuf.resize(size_t(kTileTokens) * d);
    s.scores.resize(kTileTokens);
    s.krows.resize(kTileTokens);
    s.vrows.resize(kTileTokens);

    int32_t range_lo = kv_len, range_hi = -1;
    for (int32_t i = 0; i < num_tokens; ++i) {
      const int64_t token = w.token_begin + i;
      const int32_t pos = static_cast<int32_t>(first_pos + (token - q_begin));
      const int32_t lo = window_ > 0 ? std::max(0, pos - window_ + 1) : 0;
      range_lo = std::min(range_lo, lo);
      range_hi = std::max(range_hi, pos);
      for (int32_t g = 0; g < group_; ++g) {
        const int32_t r = i * group_ + g;
        s.ranges[r] = {lo, pos};
        const int64_t q_off = (token * q_.num_q_heads + int64_t{w.kv_head} * group_ + g) * d;
        float* qr = s.q.data() + int64_t{r} * d;
        for (int32_t k = 0; k < d; ++k) qr[k] = LoadAsFloat(q_.q, q_.dtype, q_off + k) * q_scale_;
      }
    }

    for (int32_t t0 = range_lo; t0 <= range_hi;) {
      // Gather up to kTileTokens tokens; tokens of one page are contiguous rows.
      int32_t n = 0;
      while (n < kTileTokens && t0 + n <= range_hi) {
        const int32_t t = t0 + n;
        const int32_t block = v_.BlockOf(w.seq, t);
        const int32_t off = t % v_.block_size;
        const int32_t seg = std::min({v_.block_size - off, kTileTokens - n, range_hi - t + 1});
        GatherRows(block, w.kv_head, off, seg, n, s);
        n += seg;
      }
      // Pages are scattered, so the hardware prefetcher cannot guess the next one: ask for the
      // next tile's K and V rows now, while this tile is being computed.
      Prefetch(w.seq, w.kv_head, t0 + n, std::min(range_hi, t0 + n + kTileTokens - 1));
      kernels_.attend_tile(s.q.data(), rows, s.ranges.data(), t0, n, s.krows.data(), s.vrows.data(),
                           d, s.m.data(), s.l.data(), s.acc.data(), s.scores.data());
      t0 += n;
    }

    for (int32_t r = 0; r < rows; ++r) {
      const int64_t token = w.token_begin + r / group_;
      const int64_t o_off = (token * q_.num_q_heads + int64_t{w.kv_head} * group_ + r % group_) * d;
      // Every row sees at least its own token, so l > 0.
      const float inv_l = 1.0f / s.l[r];
      const float* accr = s.acc.data() + int64_t{r} * d;
      for (int32_t k = 0; k < d; ++k) StoreFromFloat(q_.out, q_.dtype, o_off + k, accr[k] * inv_l);
    }
  }

 private:
  // Prefetches the K and V rows of tokens [t_begin, t_end] (one page segment at a time).
  void Prefetch(int32_t seq, int32_t kv_head, int32_t t_begin, int32_t t_end) const {
    const auto* base = static_cast<const char*>(v_.pool);
    const int64_t elem = static_cast<int64_t>(DTypeSize(v_.dtype));
    for (int32_t t = t_begin; t <= t_end;) {
      const int32_t block = v_.BlockOf(seq, t);
      const int32_t off = t % v_.block_size;
      const int32_t seg = std::min(v_.block_size - off, t_end - t + 1);
      const int64_t bytes = int64_t{seg} * v_.head_dim * elem;
      const char* k = base + v_.KOffset(block, kv_head, off) * elem;
      const char* v = base + v_.VOffset(block, kv_head, off) * elem;
      for (int64_t i = 0; i < bytes; i += 64) {
        __builtin_prefetch(k + i);
        __builtin_prefetch(v + i);
      }
      t += seg;
    }
  }

  void GatherRows(int32_t block, int32_t kv_head, int32_t off, int32_t seg, int32_t n,
                  Scratch& s) const {
    const int32_t d = v_.head_dim;
    const int64_t k_off = v_.KOffset(block, kv_head, off);
    const int64_t v_off = v_.VOffset(block, kv_head, off);
    if (v_.dtype == DType::kFp32) {
      const float* base = static_cast<const float*>(v_.pool);
      for (int32_t j = 0; j < seg; ++j) {
        s.krows[n + j] = base + k_off + int64_t{j} * d;
        s.vrows[n + j] = base + v_off + int64_t{j} * d;
      }
      return;
    }
    const uint16_t* base = static_cast<const uint16_t*>(v_.pool);
    auto convert = v_.dtype == DType::kFp16 ? kernels_.fp16_to_float : kernels_.bf16_to_float;
    float* kdst = s.kbuf.data() + int64_t{n} * d;
    float* vdst = s.vbuf.data() + int64_t{n} * d;
    convert(base + k_off, kdst, int64_t{seg} * d);
    convert(base + v_off, vdst, int64_t{seg} * d);
    for (int32_t j = 0; j < seg; ++j) {
      s.krows[n + j] = kdst + int64_t{j} * d;
      s.vrows[n + j] = vdst + int64_t{j} * d;
    }
  }

  const PagedKVView& v_;
  const QueryBatch& q_;
  const int32_t group_;
  const float q_scale_;
  const int32_t window_;
  const CpuKernelTable& kernels_;
};

}  // namespace

void CpuPagedAttention(const PagedKVView& view, const QueryBatch& q, float softmax_scale,
                       int32_t window_tokens, CpuWorkerPool* pool) {
  Runner runner(view, q, softmax_scale, window_tokens);
  const std::vector<WorkItem> items = runner.MakeItems();
  auto run_item = [&](int64_t i) {
    thread_local Scratch scratch;
    runner.Run(items[i], scratch);
  };
  if (pool != nullptr) {
    pool->ParallelFor(static_cast<int64_t>(items.size()), run_item);
  } else if (items.size() <= 1) {
    for (size_t i = 0; i < items.size(); ++i) run_item(static_cast<int64_t>(i));
  } else {
    CpuWorkerPool local_pool(0);
    local_pool.ParallelFor(static_cast<int64_t>(items.size()), run_item);
  }
}

}  // namespace pagedkv::attention_internal
