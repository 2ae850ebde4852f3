#include "pagedkv/core/types.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv {

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kGpu:
      return "gpu";
    case Tier::kHost:
      return "host";
    case Tier::kVirtual:
      return "virtual";
  }
  return "unknown";
}

absl::StatusOr<Tier> ParseTier(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  if (lower == "gpu") return Tier::kGpu;
  if (lower == "host") return Tier::kHost;
  if (lower == "virtual") return Tier::kVirtual;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tier '", AbslView(name), "'; expected one of: gpu, host, virtual"));
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return "fp32";
    case DType::kFp16:
      return "fp16";
    case DType::kBf16:
      return "bf16";
    case DType::kFp8E4m3:
      return "fp8_e4m3";
    case DType::kInt8:
      return "int8";
  }
  return "unknown";
}

absl::StatusOr<DType> ParseDType(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  if (lower == "fp32" || lower == "float32" || lower == "float") return DType::kFp32;
  if (lower == "fp16" || lower == "float16" || lower == "half") return DType::kFp16;
  if (lower == "bf16" || lower == "bfloat16") return DType::kBf16;
  if (lower == "fp8_e4m3" || lower == "fp8" || lower == "e4m3") return DType::kFp8E4m3;
  if (lower == "int8") return DType::kInt8;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype '", AbslView(name), "'; expected one of: fp32, fp16, bf16, fp8_e4m3, int8"));
}

}  // namespace pagedkv
