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

constexpr int32_t kTileTokens = kMaxTileTokens;
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
  std::vector<float> q, m, l, acc, tile_scratch;
  std::vector<RowRange> ranges;
  // Row pointers of the current and the next tile.
  const void* krows[2][kTileTokens];
  const void* vrows[2][kTileTokens];
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
        format_(view.dtype == DType::kFp16   ? KvFormat::kFp16
                : view.dtype == DType::kBf16 ? KvFormat::kBf16
                                             : KvFormat::kFp32),
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
    s.tile_scratch.resize(size_t(TileScratchFloats(d)));

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

    // Tiles of up to kTileTokens tokens; the next tile's row pointers are gathered first so the
    // kernel can prefetch them while it computes this one.
    int32_t cur = 0;
    int32_t t0 = range_lo;
    int32_t n = GatherTile(w, t0, range_hi, s.krows[cur], s.vrows[cur]);
    while (n > 0) {
      const int32_t next_t0 = t0 + n;
      const int32_t next_n = GatherTile(w, next_t0, range_hi, s.krows[1 - cur], s.vrows[1 - cur]);
      TileArgs args;
      args.q = s.q.data();
      args.num_rows = rows;
      args.ranges = s.ranges.data();
      args.t0 = t0;
      args.n = n;
      args.krows = s.krows[cur];
      args.vrows = s.vrows[cur];
      args.next_krows = s.krows[1 - cur];
      args.next_vrows = s.vrows[1 - cur];
      args.next_n = next_n;
      args.format = format_;
      args.head_dim = d;
      args.m = s.m.data();
      args.l = s.l.data();
      args.acc = s.acc.data();
      args.scratch = s.tile_scratch.data();
      kernels_.attend_tile(args);
      cur = 1 - cur;
      t0 = next_t0;
      n = next_n;
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
  // Points krows / vrows at the K and V rows of tokens [t0, min(t0 + kTileTokens, t_end + 1)) of
  // the item's sequence and KV head; returns how many (0 when t0 > t_end). The rows of one page
  // are contiguous.
  int32_t GatherTile(const WorkItem& w, int32_t t0, int32_t t_end, const void** krows,
                     const void** vrows) const {
    const auto* base = static_cast<const char*>(v_.pool);
    const int64_t elem = static_cast<int64_t>(DTypeSize(v_.dtype));
    const int64_t row_bytes = int64_t{v_.head_dim} * elem;
    int32_t n = 0;
    while (n < kTileTokens && t0 + n <= t_end) {
      const int32_t t = t0 + n;
      const int32_t block = v_.BlockOf(w.seq, t);
      const int32_t off = t % v_.block_size;
      const int32_t seg = std::min({v_.block_size - off, kTileTokens - n, t_end - t + 1});
      const char* k = base + v_.KOffset(block, w.kv_head, off) * elem;
      const char* v = base + v_.VOffset(block, w.kv_head, off) * elem;
      for (int32_t j = 0; j < seg; ++j) {
        krows[n + j] = k + j * row_bytes;
        vrows[n + j] = v + j * row_bytes;
      }
      n += seg;
    }
    return n;
  }

  const PagedKVView& v_;
  const QueryBatch& q_;
  const int32_t group_;
  const float q_scale_;
  const int32_t window_;
  const KvFormat format_;
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
