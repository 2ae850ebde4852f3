// PagedKVView: offsets follow pool[block][layer][K/V][kv_head][slot][head_dim]; CSR accessors.
#include "pagedkv/attention/paged_kv_view.h"

#include <vector>

#include "gtest/gtest.h"

namespace pagedkv {
namespace {

TEST(PagedKVView, ForLayerOffsetsFollowTheBlockLayout) {
  const int32_t layers = 3, layer = 2, heads = 4, dim = 8, bs = 5;
  PagedKVView v = PagedKVView::ForLayer(nullptr, DType::kBf16, 10, layers, layer, heads, dim, bs);
  EXPECT_EQ(v.block_stride_elems, int64_t{layers} * 2 * heads * bs * dim);
  for (int32_t block : {0, 7}) {
    for (int32_t kv : {0, 1}) {
      for (int32_t h : {0, 3}) {
        for (int32_t slot : {0, 4}) {
          const int64_t want =
              ((((int64_t{block} * layers + layer) * 2 + kv) * heads + h) * bs + slot) * dim;
          EXPECT_EQ(v.Offset(block, kv, h, slot), want);
        }
      }
    }
  }
  EXPECT_EQ(v.VOffset(1, 2, 3) - v.KOffset(1, 2, 3), int64_t{heads} * bs * dim);
}

TEST(PagedKVView, SequenceLengthsAndBlocks) {
  std::vector<int32_t> indptr = {0, 2, 2, 5}, indices = {9, 4, 1, 2, 3}, last = {3, 1, 16};
  PagedKVView v = PagedKVView::ForLayer(nullptr, DType::kFp16, 10, 1, 0, 1, 64, 16);
  v.batch_size = 3;
  v.page_indptr = indptr.data();
  v.page_indices = indices.data();
  v.last_page_len = last.data();
  EXPECT_EQ(v.SeqLen(0), 19);
  EXPECT_EQ(v.SeqLen(1), 0);
  EXPECT_EQ(v.SeqLen(2), 48);
  EXPECT_EQ(v.BlockOf(0, 15), 9);
  EXPECT_EQ(v.BlockOf(0, 16), 4);
  EXPECT_EQ(v.BlockOf(2, 47), 3);
  EXPECT_EQ(v.NumPages(2), 3);
}

}  // namespace
}  // namespace pagedkv
