#include "pagedkv/core/types.h"

#include "gtest/gtest.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

TEST(DTypeTest, SizesAndNamesRoundTrip) {
  EXPECT_EQ(DTypeSize(DType::kFp32), 4u);
  EXPECT_EQ(DTypeSize(DType::kFp16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBf16), 2u);
  EXPECT_EQ(DTypeSize(DType::kFp8E4m3), 1u);
  EXPECT_EQ(DTypeSize(DType::kInt8), 1u);
  for (DType d : {DType::kFp32, DType::kFp16, DType::kBf16, DType::kFp8E4m3, DType::kInt8}) {
    absl::StatusOr<DType> parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_EQ(*ParseDType("BFloat16"), DType::kBf16);
}

TEST(DTypeTest, UnknownNameIsInvalidArgumentListingChoices) {
  absl::StatusOr<DType> parsed = ParseDType("fp12");
  ASSERT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("fp12"), std::string_view::npos);
  EXPECT_NE(parsed.status().message().find("bf16"), std::string_view::npos);
}

TEST(TierTest, NamesRoundTrip) {
  for (Tier t : {Tier::kGpu, Tier::kHost, Tier::kVirtual}) {
    EXPECT_EQ(*ParseTier(TierName(t)), t);
  }
  EXPECT_EQ(ParseTier("disk").status().code(), absl::StatusCode::kInvalidArgument);
}

absl::StatusOr<int> Half(int v) {
  if (v % 2 != 0) return absl::InvalidArgumentError("odd");
  return v / 2;
}

absl::StatusOr<int> Quarter(int v) {
  PAGEDKV_ASSIGN_OR_RETURN(int h, Half(v));
  PAGEDKV_ASSIGN_OR_RETURN(h, Half(h));
  return h;
}

absl::Status CheckEven(int v) {
  PAGEDKV_RETURN_IF_ERROR(Half(v).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagedkv
