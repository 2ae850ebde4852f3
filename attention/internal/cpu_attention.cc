#include "attention/internal/cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "attention/internal/cpu_kernels.h"
#include "pagedkv/attention/half_float.h"
#include "pagedkv/core/check.h"

namespace pagedkv::attention_internal {
namespace {

constexpr int32_t kTileTokens = kMaxTileTokens;
// Query rows per KV head (tokens x query heads of its group) in one chunk: bounds the float state
// of a work item, while making each chunk's pass over the KV serve as many query tokens as it can.
constexpr int32_t kMaxRowsPerHead = 64;
// Split-KV: when a batch has fewer chunks than kTargetItems, each chunk's KV range is split across
// items (flash-decoding), down to kMinSplitTokens per split, and the partial softmax states are
// combined at the end. The plan does not depend on the number of threads, so neither do the
// results (to the bit).
constexpr int64_t kTargetItems = 32;
constexpr int32_t kMinSplitTokens = 512;

// A chunk: query tokens [token_begin, token_end) of one sequence, all KV heads. Its rows are
// ordered [kv head][token][query head of the group].
struct Chunk {
  int32_t seq = 0;
  int64_t token_begin = 0;
  int64_t token_end = 0;
  int32_t kv_lo = 0;  // the KV positions any of its rows sees
  int32_t kv_hi = -1;
  int32_t num_splits = 1;
  int64_t partial_offset = 0;  // first row of its partial states (num_splits > 1)
};

// One item of the parallel loop: a chunk's KV positions [kv_lo, kv_hi] (all of them, or a split).
struct WorkItem {
  int32_t chunk = 0;
  int32_t split = 0;
  int32_t kv_lo = 0;
  int32_t kv_hi = -1;
  int64_t cost = 0;  // rows x KV tokens, to run the largest first
};

// The unnormalized softmax states of split items: row r of split s of a chunk is at
// chunk.partial_offset + s * rows + r.
struct Partials {
  std::vector<float> m, l, acc;
};

// Per-thread buffers, reused across items and calls.
struct Scratch {
  std::vector<float> q, m, l, acc, tile_scratch;
  std::vector<RowRange> ranges;
  // Row pointers of the current and the next step.
  const void* krows[2][kTileTokens];
  const void* vrows[2][kTileTokens];
};

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

// Runs the chunks: every item walks its KV range a tile at a time, and within a tile every KV head
// in order, so a page's K and V regions (all heads of the layer, contiguous in the pool) are read
// front to back rather than a head's 1/num_kv_heads slice of every page.
class Runner {
 public:
  Runner(const PagedKVView& view, const QueryBatch& q, float softmax_scale, int32_t window_tokens)
      : v_(view),
        q_(q),
        group_(q.num_q_heads / view.num_kv_heads),
        tokens_per_chunk_(std::max<int32_t>(1, kMaxRowsPerHead / group_)),
        // Base-2 scores: exp(x * scale) == exp2(x * scale * log2(e)).
        q_scale_(softmax_scale * 1.4426950408889634f),
        window_(window_tokens),
        format_(view.dtype == DType::kFp16   ? KvFormat::kFp16
                : view.dtype == DType::kBf16 ? KvFormat::kBf16
                                             : KvFormat::kFp32),
        kernels_(CpuKernels()) {}

  // Cuts the batch into chunks and items; sizes the partial states.
  void Plan() {
    for (int32_t b = 0; b < v_.batch_size; ++b) {
      const int64_t begin = QBegin(b), end = QEnd(b);
      const int32_t kv_len = v_.SeqLen(b);
      for (int64_t t = begin; t < end; t += tokens_per_chunk_) {
        Chunk c;
        c.seq = b;
        c.token_begin = t;
        c.token_end = std::min<int64_t>(end, t + tokens_per_chunk_);
        // The query tokens are the last ones of the sequence: the first sees the least KV (its
        // window starts earliest), the last sees the most.
        const int32_t first_pos = static_cast<int32_t>(kv_len - (end - t));
        c.kv_hi = static_cast<int32_t>(kv_len - (end - c.token_end) - 1);
        c.kv_lo = window_ > 0 ? std::max(0, first_pos - window_ + 1) : 0;
        chunks_.push_back(c);
      }
    }
    const int64_t want_splits =
        (kTargetItems + int64_t(chunks_.size()) - 1) / std::max<int64_t>(1, chunks_.size());
    int64_t partial_rows = 0;
    for (int32_t ci = 0; ci < int32_t(chunks_.size()); ++ci) {
      Chunk& c = chunks_[ci];
      const int32_t span = c.kv_hi - c.kv_lo + 1;
      const int32_t rows = Rows(c);
      c.num_splits = static_cast<int32_t>(
          std::clamp<int64_t>(std::min<int64_t>(want_splits, span / kMinSplitTokens), 1, 1 << 16));
      // Splits of whole tiles, the last one shorter.
      const int32_t tiles = (span + kTileTokens - 1) / kTileTokens;
      const int32_t tiles_per_split = (tiles + c.num_splits - 1) / c.num_splits;
      c.num_splits = (tiles + tiles_per_split - 1) / tiles_per_split;
      if (c.num_splits > 1) {
        c.partial_offset = partial_rows;
        partial_rows += int64_t{c.num_splits} * rows;
      }
      for (int32_t sp = 0; sp < c.num_splits; ++sp) {
        const int32_t lo = c.kv_lo + sp * tiles_per_split * kTileTokens;
        const int32_t hi = std::min(c.kv_hi, lo + tiles_per_split * kTileTokens - 1);
        items_.push_back({ci, sp, lo, hi, int64_t{hi - lo + 1} * rows});
      }
    }
    std::stable_sort(items_.begin(), items_.end(),
                     [](const WorkItem& a, const WorkItem& b) { return a.cost > b.cost; });
    partials_.m.resize(size_t(partial_rows));
    partials_.l.resize(size_t(partial_rows));
    partials_.acc.resize(size_t(partial_rows) * v_.head_dim);
  }

  int64_t num_items() const { return static_cast<int64_t>(items_.size()); }
  int64_t num_chunks() const { return static_cast<int64_t>(chunks_.size()); }
  bool has_splits() const { return !partials_.m.empty(); }

  void RunItem(int64_t i, Scratch& s) const {
    const WorkItem& w = items_[i];
    const Chunk& c = chunks_[w.chunk];
    const int32_t d = v_.head_dim;
    const int32_t num_tokens = static_cast<int32_t>(c.token_end - c.token_begin);
    const int32_t head_rows = num_tokens * group_;
    const int32_t rows = head_rows * v_.num_kv_heads;
    const int32_t kv_len = v_.SeqLen(c.seq);
    // Position of query token QBegin: the query tokens are the last ones of the sequence.
    const int64_t first_pos = kv_len - (QEnd(c.seq) - QBegin(c.seq));

    s.q.resize(size_t(rows) * d);
    s.acc.assign(size_t(rows) * d, 0.0f);
    s.m.assign(rows, -std::numeric_limits<float>::infinity());
    s.l.assign(rows, 0.0f);
    s.ranges.resize(head_rows);
    s.tile_scratch.resize(size_t(TileScratchFloats(d)));

    for (int32_t i_tok = 0; i_tok < num_tokens; ++i_tok) {
      const int64_t token = c.token_begin + i_tok;
      const int32_t pos = static_cast<int32_t>(first_pos + (token - QBegin(c.seq)));
      const int32_t lo = window_ > 0 ? std::max(0, pos - window_ + 1) : 0;
      for (int32_t g = 0; g < group_; ++g) s.ranges[i_tok * group_ + g] = {lo, pos};
      for (int32_t h = 0; h < v_.num_kv_heads; ++h) {
        // The group's query heads are adjacent in q: group * d elements from q_off.
        const int64_t q_off = (token * q_.num_q_heads + int64_t{h} * group_) * d;
        float* qr = s.q.data() + (int64_t{h} * head_rows + i_tok * group_) * d;
        LoadScaled(q_off, int64_t{group_} * d, qr);
      }
    }

    // Steps (tile, KV head) in order; the next step's row pointers are gathered first so the
    // kernel can prefetch them while it computes this one.
    const int32_t num_heads = v_.num_kv_heads;
    int32_t cur = 0;
    int32_t t0 = w.kv_lo, h = 0;
    int32_t n = GatherTile(c.seq, h, t0, w.kv_hi, s.krows[cur], s.vrows[cur]);
    while (n > 0) {
      const int32_t next_h = h + 1 < num_heads ? h + 1 : 0;
      const int32_t next_t0 = h + 1 < num_heads ? t0 : t0 + n;
      const int32_t next_n =
          GatherTile(c.seq, next_h, next_t0, w.kv_hi, s.krows[1 - cur], s.vrows[1 - cur]);
      const int64_t row0 = int64_t{h} * head_rows;
      TileArgs args;
      args.q = s.q.data() + row0 * d;
      args.num_rows = head_rows;
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
      args.m = s.m.data() + row0;
      args.l = s.l.data() + row0;
      args.acc = s.acc.data() + row0 * d;
      args.scratch = s.tile_scratch.data();
      kernels_.attend_tile(args);
      cur = 1 - cur;
      t0 = next_t0;
      h = next_h;
      n = next_n;
    }

    if (c.num_splits > 1) {
      // Park the unnormalized state; Combine() merges the splits.
      const int64_t p0 = c.partial_offset + int64_t{w.split} * rows;
      std::copy(s.m.begin(), s.m.end(), partials_.m.begin() + p0);
      std::copy(s.l.begin(), s.l.end(), partials_.l.begin() + p0);
      std::copy(s.acc.begin(), s.acc.end(), partials_.acc.begin() + p0 * d);
      return;
    }
    for (int32_t r = 0; r < rows; ++r) {
      // Every row sees at least its own token, so l > 0.
      const float inv_l = 1.0f / s.l[r];
      const float* accr = s.acc.data() + int64_t{r} * d;
      const int64_t o_off = OutOffset(c, r);
      for (int32_t k = 0; k < d; ++k) StoreFromFloat(q_.out, q_.dtype, o_off + k, accr[k] * inv_l);
    }
  }

  // Merges the splits of chunk ci (if it has several) into the output: the rescaled sum of the
  // split states, each weighted by 2^(m_split - m_max).
  void Combine(int64_t ci) const {
    const Chunk& c = chunks_[ci];
    if (c.num_splits <= 1) return;
    const int32_t d = v_.head_dim;
    const int32_t rows = Rows(c);
    std::vector<float> out(d);
    for (int32_t r = 0; r < rows; ++r) {
      float m_max = -std::numeric_limits<float>::infinity();
      for (int32_t sp = 0; sp < c.num_splits; ++sp) {
        m_max = std::max(m_max, partials_.m[c.partial_offset + int64_t{sp} * rows + r]);
      }
      float l = 0.0f;
      std::fill(out.begin(), out.end(), 0.0f);
      for (int32_t sp = 0; sp < c.num_splits; ++sp) {
        const int64_t p = c.partial_offset + int64_t{sp} * rows + r;
        if (partials_.l[p] == 0.0f) continue;  // this split held none of the row's tokens
        const float w = std::exp2(partials_.m[p] - m_max);
        l += partials_.l[p] * w;
        const float* acc = partials_.acc.data() + p * d;
        for (int32_t k = 0; k < d; ++k) out[k] += acc[k] * w;
      }
      const float inv_l = 1.0f / l;
      const int64_t o_off = OutOffset(c, r);
      for (int32_t k = 0; k < d; ++k) StoreFromFloat(q_.out, q_.dtype, o_off + k, out[k] * inv_l);
    }
  }

 private:
  // dst[i] = q[offset + i] * q_scale_, i < n, in fp32.
  void LoadScaled(int64_t offset, int64_t n, float* dst) const {
    switch (q_.dtype) {
      case DType::kFp16:
        kernels_.fp16_to_float(static_cast<const uint16_t*>(q_.q) + offset, dst, n);
        break;
      case DType::kBf16:
        kernels_.bf16_to_float(static_cast<const uint16_t*>(q_.q) + offset, dst, n);
        break;
      default:
        PAGEDKV_DCHECK(q_.dtype == DType::kFp32);
        std::copy_n(static_cast<const float*>(q_.q) + offset, n, dst);
        break;
    }
    for (int64_t i = 0; i < n; ++i) dst[i] *= q_scale_;
  }

  int64_t QBegin(int32_t b) const { return q_.qo_indptr ? q_.qo_indptr[b] : b; }
  int64_t QEnd(int32_t b) const { return q_.qo_indptr ? q_.qo_indptr[b + 1] : b + 1; }
  int32_t Rows(const Chunk& c) const {
    return static_cast<int32_t>(c.token_end - c.token_begin) * q_.num_q_heads;
  }
  // Output element offset of row r of chunk c (rows ordered [kv head][token][query head]).
  int64_t OutOffset(const Chunk& c, int32_t r) const {
    const int32_t head_rows = static_cast<int32_t>(c.token_end - c.token_begin) * group_;
    const int32_t h = r / head_rows, in_head = r % head_rows;
    const int64_t token = c.token_begin + in_head / group_;
    return (token * q_.num_q_heads + int64_t{h} * group_ + in_head % group_) * v_.head_dim;
  }

  // Points krows / vrows at the K and V rows of KV head `kv_head`, tokens
  // [t0, min(t0 + kTileTokens, t_end + 1)) of sequence `seq`; returns how many (0 when
  // t0 > t_end). The rows of one page are contiguous.
  int32_t GatherTile(int32_t seq, int32_t kv_head, int32_t t0, int32_t t_end, const void** krows,
                     const void** vrows) const {
    const auto* base = static_cast<const char*>(v_.pool);
    const int64_t elem = static_cast<int64_t>(DTypeSize(v_.dtype));
    const int64_t row_bytes = int64_t{v_.head_dim} * elem;
    int32_t n = 0;
    while (n < kTileTokens && t0 + n <= t_end) {
      const int32_t t = t0 + n;
      const int32_t block = v_.BlockOf(seq, t);
      const int32_t off = t % v_.block_size;
      const int32_t seg = std::min({v_.block_size - off, kTileTokens - n, t_end - t + 1});
      const char* k = base + v_.KOffset(block, kv_head, off) * elem;
      const char* v = base + v_.VOffset(block, kv_head, off) * elem;
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
  const int32_t tokens_per_chunk_;
  const float q_scale_;
  const int32_t window_;
  const KvFormat format_;
  const CpuKernelTable& kernels_;
  std::vector<Chunk> chunks_;
  std::vector<WorkItem> items_;
  // Written by split items (disjoint rows), read by Combine after the parallel loop.
  mutable Partials partials_;
};

}  // namespace

void CpuPagedAttention(const PagedKVView& view, const QueryBatch& q, float softmax_scale,
                       int32_t window_tokens, CpuWorkerPool* pool) {
  Runner runner(view, q, softmax_scale, window_tokens);
  const int num_threads = pool != nullptr
                              ? pool->num_threads()
                              : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  runner.Plan();
  std::unique_ptr<CpuWorkerPool> local_pool;
  if (pool == nullptr && num_threads > 1 && runner.num_items() > 1) {
    local_pool = std::make_unique<CpuWorkerPool>(num_threads);
    pool = local_pool.get();
  }
  auto run_item = [&](int64_t i) {
    thread_local Scratch scratch;
    runner.RunItem(i, scratch);
  };
  auto combine = [&](int64_t ci) { runner.Combine(ci); };
  if (pool == nullptr) {
    for (int64_t i = 0; i < runner.num_items(); ++i) run_item(i);
    if (runner.has_splits()) {
      for (int64_t ci = 0; ci < runner.num_chunks(); ++ci) combine(ci);
    }
    return;
  }
  pool->ParallelFor(runner.num_items(), run_item);
  if (runner.has_splits()) pool->ParallelFor(runner.num_chunks(), combine);
}

}  // namespace pagedkv::attention_internal
