// The pagedkv.v1 wire helpers that the server and every C++ client share: absl <-> gRPC status
// mapping (same code, same message), and the packed little-endian arrays of StepResponse turned
// into the library's own BatchLayout and CacheOps.
//
//   PAGEDKV_ASSIGN_OR_RETURN(BatchLayout layout, UnpackLayout(response.layouts(0)));
//   PAGEDKV_ASSIGN_OR_RETURN(CacheOps ops, UnpackCacheOps(response));
#ifndef PAGEDKV_SERVICE_WIRE_H_
#define PAGEDKV_SERVICE_WIRE_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "grpcpp/support/status.h"
#include "pagedkv/block_manager/batch_layout.h"
#include "pagedkv/block_manager/cache_ops.h"
#include "pagedkv/v1/kvcache.pb.h"

namespace pagedkv::service {

static_assert(std::endian::native == std::endian::little,
              "pagedkv.v1 packs arrays little-endian; a big-endian port must byte-swap here");

// absl and gRPC number their codes alike; the message is carried unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
void ToProto(const absl::Status& status, v1::Status* out);
absl::Status FromProto(const v1::Status& status);

// Appends `values` to `out` as little-endian bytes.
template <typename T>
void PackArray(absl::Span<const T> values, std::string* out) {
  out->append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}
// The array in `bytes`; InvalidArgument naming `field` when the length is not a multiple of
// sizeof(T).
template <typename T>
absl::StatusOr<std::vector<T>> UnpackArray(std::string_view bytes, std::string_view field) {
  if (bytes.size() % sizeof(T) != 0) {
    return absl::InvalidArgumentError(std::string(field) + ": " + std::to_string(bytes.size()) +
                                      " bytes is not a whole number of " +
                                      std::to_string(sizeof(T)) + "-byte elements");
  }
  std::vector<T> values(bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

// (src, dst) pairs as 8 bytes each.
void PackPairs(absl::Span<const BlockPair> pairs, std::string* out);
absl::StatusOr<std::vector<BlockPair>> UnpackPairs(std::string_view bytes, std::string_view field);

// Packs a library BatchLayout / CacheOps into their messages (the server's side).
void PackLayout(const BatchLayout& layout, v1::BatchLayout* out);
void PackCacheOps(const CacheOps& ops, v1::StepResponse* out);

// The library structs back from a response; InvalidArgument for arrays whose lengths disagree
// (B + 1 indptr entries, indptr ending at the number of pages / slots).
absl::StatusOr<BatchLayout> UnpackLayout(const v1::BatchLayout& layout);
absl::StatusOr<CacheOps> UnpackCacheOps(const v1::StepResponse& response);

}  // namespace pagedkv::service

#endif  // PAGEDKV_SERVICE_WIRE_H_
