// pagedkv.v1 wire helpers: status mapping and packed arrays (include/pagedkv/service/wire.h).
#include "pagedkv/service/wire.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv::service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void ToProto(const absl::Status& status, v1::Status* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(std::string(status.message()));
}

absl::Status FromProto(const v1::Status& status) {
  if (status.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

void PackPairs(absl::Span<const BlockPair> pairs, std::string* out) {
  static_assert(sizeof(BlockPair) == 8, "BlockPair is two uint32 block ids");
  out->append(reinterpret_cast<const char*>(pairs.data()), pairs.size() * sizeof(BlockPair));
}

absl::StatusOr<std::vector<BlockPair>> UnpackPairs(std::string_view bytes, std::string_view field) {
  return UnpackArray<BlockPair>(bytes, field);
}

void PackLayout(const BatchLayout& layout, v1::BatchLayout* out) {
  out->set_group(layout.group);
  out->set_block_size(layout.block_size);
  out->set_batch_size(layout.batch_size());
  PackArray<int32_t>(layout.page_indptr, out->mutable_page_indptr());
  PackArray<int32_t>(layout.page_indices, out->mutable_page_indices());
  PackArray<int32_t>(layout.last_page_len, out->mutable_last_page_len());
  PackArray<int32_t>(layout.first_page_token, out->mutable_first_page_token());
  PackArray<int32_t>(layout.query_indptr, out->mutable_query_indptr());
  PackArray<int64_t>(layout.slot_mapping, out->mutable_slot_mapping());
}

void PackCacheOps(const CacheOps& ops, v1::StepResponse* out) {
  for (const GroupCacheOps& g : ops.groups) {
    v1::GroupCacheOps* m = out->add_cache_ops();
    m->set_group(g.group);
    m->set_bytes_per_block(g.bytes_per_block);
    PackPairs(g.swap_out, m->mutable_swap_out());
    PackPairs(g.swap_in, m->mutable_swap_in());
    PackPairs(g.copies, m->mutable_copies());
  }
}

absl::StatusOr<BatchLayout> UnpackLayout(const v1::BatchLayout& m) {
  BatchLayout layout;
  layout.group = m.group();
  layout.block_size = m.block_size();
  PAGEDKV_ASSIGN_OR_RETURN(layout.page_indptr,
                           UnpackArray<int32_t>(m.page_indptr(), "page_indptr"));
  PAGEDKV_ASSIGN_OR_RETURN(layout.page_indices,
                           UnpackArray<int32_t>(m.page_indices(), "page_indices"));
  PAGEDKV_ASSIGN_OR_RETURN(layout.last_page_len,
                           UnpackArray<int32_t>(m.last_page_len(), "last_page_len"));
  PAGEDKV_ASSIGN_OR_RETURN(layout.first_page_token,
                           UnpackArray<int32_t>(m.first_page_token(), "first_page_token"));
  PAGEDKV_ASSIGN_OR_RETURN(layout.query_indptr,
                           UnpackArray<int32_t>(m.query_indptr(), "query_indptr"));
  PAGEDKV_ASSIGN_OR_RETURN(layout.slot_mapping,
                           UnpackArray<int64_t>(m.slot_mapping(), "slot_mapping"));
  const size_t b = static_cast<size_t>(m.batch_size());
  if (m.batch_size() < 0 || layout.last_page_len.size() != b ||
      layout.first_page_token.size() != b || layout.page_indptr.size() != b + 1 ||
      layout.query_indptr.size() != b + 1 ||
      static_cast<size_t>(layout.page_indptr.back()) != layout.page_indices.size() ||
      static_cast<size_t>(layout.query_indptr.back()) != layout.slot_mapping.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch layout of group ", m.group(), ": array lengths disagree with batch_size ",
        m.batch_size(), " (indptr ", layout.page_indptr.size(), ", pages ",
        layout.page_indices.size(), ", slots ", layout.slot_mapping.size(), ")"));
  }
  return layout;
}

absl::StatusOr<CacheOps> UnpackCacheOps(const v1::StepResponse& response) {
  CacheOps ops;
  ops.groups.reserve(response.cache_ops_size());
  for (const v1::GroupCacheOps& m : response.cache_ops()) {
    GroupCacheOps g;
    g.group = m.group();
    g.bytes_per_block = m.bytes_per_block();
    PAGEDKV_ASSIGN_OR_RETURN(g.swap_out, UnpackPairs(m.swap_out(), "swap_out"));
    PAGEDKV_ASSIGN_OR_RETURN(g.swap_in, UnpackPairs(m.swap_in(), "swap_in"));
    PAGEDKV_ASSIGN_OR_RETURN(g.copies, UnpackPairs(m.copies(), "copies"));
    ops.groups.push_back(std::move(g));
  }
  return ops;
}

}  // namespace pagedkv::service
