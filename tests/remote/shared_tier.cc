#include "tests/remote/shared_tier.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/status.h"

namespace pagedkv::testing {
namespace {

constexpr int32_t kBlockSize = 16;
constexpr int32_t kHeadDim = 4;

// The K (kv = 0) or V (kv = 1) word d of a token: depends on the token's whole prefix, as real
// K/V does, so a page with the right ids but another prefix is caught too.
float Value(const std::vector<TokenId>& tokens, size_t pos, int kv, int d) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i <= pos; ++i)
    h = (h ^ static_cast<uint32_t>(tokens[i])) * 0xbf58476d1ce4e5b9ull;
  return static_cast<float>((h >> (8 * d + 3 * kv)) & 0xffff) + 0.25f * kv;
}

}  // namespace

std::vector<TokenId> PagePrompt(int32_t pages, TokenId base) {
  std::vector<TokenId> t(static_cast<size_t>(pages * kBlockSize + 1));
  for (size_t i = 0; i < t.size(); ++i) t[i] = base + static_cast<TokenId>(i * 13 % 997);
  return t;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const std::string& url, int32_t gpu_blocks,
                                                       int32_t host_blocks, int64_t timeout_us) {
  ModelSpec spec;
  spec.name = "remote-test";
  spec.num_q_heads = 1;
  spec.num_kv_heads = 1;
  spec.head_dim = kHeadDim;
  spec.kv_dtype = DType::kFp32;
  spec.layers = {LayerSpec::Full()};
  CacheConfig cfg;
  cfg.block_size_tokens = kBlockSize;
  cfg.gpu_tier = Tier::kHost;  // bytes the test can read, with or without CUDA
  cfg.gpu_num_blocks = gpu_blocks;
  cfg.host_num_blocks = host_blocks;
  cfg.watermark = 0.0;
  cfg.enable_prefix_caching = true;
  cfg.remote.url = url;
  cfg.remote.admit_hits = 0;
  cfg.remote.timeout_us = timeout_us;
  auto e = std::unique_ptr<Engine>(new Engine());
  PAGEDKV_ASSIGN_OR_RETURN(e->bm_, BlockManager::Create(spec, cfg));
  return e;
}

absl::Status Engine::ExecuteOps() {
  const CacheOps ops = bm_->TakeCacheOps();
  for (const GroupCacheOps& g : ops.groups) {
    MemoryPool& gpu = bm_->gpu_pool(g.group);
    MemoryPool* host = bm_->host_pool(g.group);
    for (const BlockPair& p : g.swap_out) {
      std::memcpy(host->BlockData(p.dst), gpu.BlockData(p.src), g.bytes_per_block);
    }
    for (const BlockPair& p : g.swap_in) {
      std::memcpy(gpu.BlockData(p.dst), host->BlockData(p.src), g.bytes_per_block);
    }
    for (const BlockPair& p : g.copies) {
      std::memcpy(gpu.BlockData(p.dst), gpu.BlockData(p.src), g.bytes_per_block);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AdmitInfo> Engine::Prefill(SeqId seq, const std::vector<TokenId>& prompt) {
  PAGEDKV_ASSIGN_OR_RETURN(AdmitInfo info, bm_->AddSequence(seq, prompt));
  PAGEDKV_RETURN_IF_ERROR(ExecuteOps());
  const int32_t n = static_cast<int32_t>(prompt.size());
  const BatchEntry e{seq, n - info.num_cached_tokens, n};
  BatchLayout layout;
  PAGEDKV_RETURN_IF_ERROR(bm_->BuildBatch({&e, 1}, 0, &layout));
  MemoryPool& pool = bm_->gpu_pool(0);
  for (int32_t i = 0; i < e.num_new_tokens; ++i) {
    const size_t pos = static_cast<size_t>(info.num_cached_tokens + i);
    const int64_t slot = layout.slot_mapping[i];
    auto* block = reinterpret_cast<float*>(pool.BlockData(static_cast<BlockId>(slot / kBlockSize)));
    const int32_t off = static_cast<int32_t>(slot % kBlockSize);
    for (int kv = 0; kv < 2; ++kv) {
      for (int d = 0; d < kHeadDim; ++d) {
        block[(kv * kBlockSize + off) * kHeadDim + d] = Value(prompt, pos, kv, d);
      }
    }
  }
  PAGEDKV_RETURN_IF_ERROR(bm_->MarkComputed(seq, n));
  return info;
}

absl::Status Engine::Verify(SeqId seq, const std::vector<TokenId>& prompt) {
  PAGEDKV_ASSIGN_OR_RETURN(const BlockTable* t, bm_->GetBlockTable(seq, 0));
  MemoryPool& pool = bm_->gpu_pool(0);
  for (size_t pos = 0; pos < prompt.size(); ++pos) {
    const int64_t slot = t->Slot(static_cast<int32_t>(pos), kBlockSize);
    const auto* block =
        reinterpret_cast<const float*>(pool.BlockData(static_cast<BlockId>(slot / kBlockSize)));
    const int32_t off = static_cast<int32_t>(slot % kBlockSize);
    for (int kv = 0; kv < 2; ++kv) {
      for (int d = 0; d < kHeadDim; ++d) {
        const float got = block[(kv * kBlockSize + off) * kHeadDim + d];
        if (got != Value(prompt, pos, kv, d)) {
          return absl::InternalError(absl::StrCat("sequence ", seq, " token ", pos, " ",
                                                  kv ? "V" : "K", "[", d, "] is ", got,
                                                  ", expected ", Value(prompt, pos, kv, d)));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Churn(int32_t rounds, TokenId base) {
  for (int32_t r = 0; r < rounds; ++r) {
    const SeqId id = 1000000 + static_cast<SeqId>(base) + static_cast<SeqId>(r);
    PAGEDKV_RETURN_IF_ERROR(Prefill(id, PagePrompt(3, base + 7919 * (r + 1))).status());
    PAGEDKV_RETURN_IF_ERROR(bm_->Free(id));
    PAGEDKV_RETURN_IF_ERROR(ExecuteOps());
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::testing
