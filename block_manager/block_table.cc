#include "pagedkv/block_manager/block_table.h"

#include "absl/strings/str_cat.h"

namespace pagedkv {

absl::Status BlockTable::CheckInvariants(int32_t block_size, uint32_t num_blocks) const {
  if (block_size < 1) return absl::InvalidArgumentError(absl::StrCat("block_size ", block_size));
  if (num_tokens_ < 0) {
    return absl::InternalError(absl::StrCat("table has ", num_tokens_, " tokens"));
  }
  const int64_t want_pages = (static_cast<int64_t>(num_tokens_) + block_size - 1) / block_size;
  if (static_cast<int64_t>(blocks_.size()) != want_pages) {
    return absl::InternalError(absl::StrCat("table of ", num_tokens_, " tokens (block size ",
                                            block_size, ") has ", blocks_.size(),
                                            " pages, expected ", want_pages));
  }
  if (first_live_page_ < 0 || first_live_page_ > num_pages()) {
    return absl::InternalError(
        absl::StrCat("first_live_page ", first_live_page_, " outside [0, ", num_pages(), "]"));
  }
  for (int32_t k = 0; k < num_pages(); ++k) {
    const BlockId b = blocks_[k];
    if (k < first_live_page_) {
      if (b != kInvalidBlockId) {
        return absl::InternalError(absl::StrCat("released page ", k, " still names block ", b));
      }
    } else if (b >= num_blocks) {
      return absl::InternalError(
          absl::StrCat("page ", k, " names block ", b, " of a pool of ", num_blocks, " blocks"));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagedkv
