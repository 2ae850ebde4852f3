// The remote tier from the block manager's side: published host pages that are evicted go to the
// store when they earned it (and their bytes are known to be written), and admission continues a
// prompt's prefix lookup into the store, staging verified pages in host blocks that swap in like
// host hits.
#include <algorithm>
#include <cstring>

#include "block_manager/internal/block_hasher.h"
#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {

using internal::HashPage;
using internal::PoolState;

void BlockManager::Impl::OnHostEvict(int32_t g, BlockId block, const BlockHash& hash) {
  GroupState& G = groups[g];
  if (remote == nullptr || !G.hashed) return;
  PoolState& host = G.host;
  // Written back only when reused enough, not loaded from the store itself, and filled by ops the
  // engine has reported executed (a pending offload's bytes are not there yet).
  if (host.remote_origin[block] ||
      host.reuse[block] < static_cast<uint32_t>(remote->config().admit_hits) ||
      host.filled_gen[block] > ops_done_gen) {
    return;
  }
  remote->Enqueue(g, hash, absl::MakeConstSpan(&host.tokens[static_cast<size_t>(block) * bs], bs),
                  host.alloc->pool().BlockData(block));
  PAGEDKV_LOG_TRACE("remote write group={} host_block={}", g, block);
}

void BlockManager::Impl::LookupRemote(absl::Span<const TokenId> prompt, uint64_t hash_key,
                                      size_t first_page, const BlockHash& parent, int32_t max_pages,
                                      std::vector<RemoteTier::Hit>* pages,
                                      std::vector<BlockHash>* hashes) {
  pages->clear();
  hashes->clear();
  const int64_t eligible = (static_cast<int64_t>(prompt.size()) - 1) / bs;
  const int32_t count = static_cast<int32_t>(
      std::min<int64_t>(eligible - static_cast<int64_t>(first_page), max_pages));
  if (count <= 0 || !remote->WorthLookup(count)) return;
  BlockHash h = parent;
  for (int32_t i = 0; i < count; ++i) {
    const TokenId* toks = prompt.data() + (first_page + static_cast<size_t>(i)) * bs;
    h = HashPage(h, absl::MakeConstSpan(toks, bs), hash_key);
    hashes->push_back(h);
  }
  int32_t n = remote->LookupPrefix(0, *hashes, pages);
  // Like a local hit, a page is taken only when its token ids are the prompt's.
  for (int32_t i = 0; i < n; ++i) {
    const TokenId* toks = prompt.data() + (first_page + static_cast<size_t>(i)) * bs;
    if (std::memcmp((*pages)[i].tokens, toks, sizeof(TokenId) * bs) != 0) {
      n = i;
      break;
    }
  }
  pages->resize(n);
  hashes->resize(n);
}

BlockId BlockManager::Impl::StageRemotePage(int32_t g, const RemoteTier::Hit& page,
                                            const BlockHash& hash) {
  GroupState& G = groups[g];
  PoolState& host = G.host;
  absl::StatusOr<BlockId> b = host.alloc->AllocateOne();
  PAGEDKV_CHECK_MSG(b.ok(), "host staging block unavailable after its check");
  std::memcpy(host.alloc->pool().BlockData(*b), page.page, G.info.bytes_per_block);
  std::memcpy(&host.tokens[static_cast<size_t>(*b) * bs], page.tokens, sizeof(TokenId) * bs);
  host.hashes[*b] = hash;
  host.reuse[*b] = 0;
  host.remote_origin[*b] = 1;
  host.publisher[*b] = 0;
  host.filled_gen[*b] = 0;  // written here, now
  TrySetHash(host, *b, hash);
  return *b;
}

bool BlockManager::has_remote_tier() const { return impl_->remote != nullptr; }

RemoteTierStats BlockManager::remote_stats() const {
  return impl_->remote != nullptr ? impl_->remote->stats() : RemoteTierStats{};
}

bool BlockManager::FlushRemoteWrites(absl::Duration timeout) {
  return impl_->remote == nullptr || impl_->remote->Flush(timeout);
}

}  // namespace pagedkv
