// Two engines (two BlockManagers with real host-memory pools) on one remote tier: engine A
// computes prompts (token-derived K/V written through its slot mapping), evicts them to the store,
// and engine B admits the same prompts and reads their K/V back through its own tables. Shared by
// the tests of every backend (memory://, redis://, redis+cluster://).
#ifndef PAGEDKV_TESTS_REMOTE_SHARED_TIER_H_
#define PAGEDKV_TESTS_REMOTE_SHARED_TIER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/block_manager/block_manager.h"

namespace pagedkv::testing {

class Engine {
 public:
  // A one-layer model of 512-byte pages (block size 16), `gpu_blocks` and `host_blocks` of real
  // memory, prefix caching on, the remote tier at `url` writing every page it evicts.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const std::string& url,
                                                        int32_t gpu_blocks = 8,
                                                        int32_t host_blocks = 8,
                                                        int64_t timeout_us = 200000);
  // Admits `prompt` as a new sequence, executes the step's CacheOps, computes (writes) every
  // token the admission did not find cached, reports it computed. Returns the admission.
  absl::StatusOr<AdmitInfo> Prefill(SeqId seq, const std::vector<TokenId>& prompt);
  // Reads the sequence's K/V back through its table and compares it with the values its tokens
  // imply; the first mismatch as an Internal error.
  absl::Status Verify(SeqId seq, const std::vector<TokenId>& prompt);
  // Prefills and frees prompts of other content until `prompt`'s pages left both local tiers.
  absl::Status Churn(int32_t rounds, TokenId base);
  BlockManager& manager() { return *bm_; }

 private:
  absl::Status ExecuteOps();
  std::unique_ptr<BlockManager> bm_;
};

// A prompt of `pages` full pages plus one token.
std::vector<TokenId> PagePrompt(int32_t pages, TokenId base);

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_REMOTE_SHARED_TIER_H_
