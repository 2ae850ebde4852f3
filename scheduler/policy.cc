#include "pagedkv/scheduler/policy.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "internal/policies.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

constexpr std::pair<PolicyKind, std::string_view> kNames[] = {
    {PolicyKind::kPaged, "paged"},
    {PolicyKind::kContiguousMax, "contiguous-max"},
    {PolicyKind::kContiguousRealloc, "contiguous-realloc"},
    {PolicyKind::kOrcaMax, "orca-max"},
    {PolicyKind::kOrcaPow2, "orca-pow2"},
    {PolicyKind::kOrcaOracle, "orca-oracle"},
};

constexpr std::pair<ExtentAllocatorKind, std::string_view> kAllocatorNames[] = {
    {ExtentAllocatorKind::kAuto, "auto"},
    {ExtentAllocatorKind::kFirstFit, "first-fit"},
    {ExtentAllocatorKind::kBuddy, "buddy"},
};

}  // namespace

std::string_view ExtentAllocatorKindName(ExtentAllocatorKind kind) {
  for (const auto& [k, name] : kAllocatorNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

absl::StatusOr<ExtentAllocatorKind> ParseExtentAllocatorKind(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  for (const auto& [k, n] : kAllocatorNames) {
    if (n == lower) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown extent allocator '", AbslView(name),
                                                 "'; use auto, first-fit or buddy"));
}

ExtentAllocatorKind ResolveExtentAllocator(PolicyKind policy, ExtentAllocatorKind kind) {
  if (kind != ExtentAllocatorKind::kAuto) return kind;
  switch (policy) {
    case PolicyKind::kOrcaMax:
    case PolicyKind::kOrcaPow2:
    case PolicyKind::kOrcaOracle:
      return ExtentAllocatorKind::kBuddy;
    case PolicyKind::kPaged:
    case PolicyKind::kContiguousMax:
    case PolicyKind::kContiguousRealloc:
      break;
  }
  return ExtentAllocatorKind::kFirstFit;
}

std::string_view PolicyKindName(PolicyKind kind) {
  for (const auto& [k, name] : kNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

absl::StatusOr<PolicyKind> ParsePolicyKind(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  for (const auto& [k, n] : kNames) {
    if (n == lower) return k;
  }
  return absl::NotFoundError(absl::StrCat("unknown policy '", AbslView(name),
                                          "'; policies: ", absl::StrJoin(PolicyKindNames(), ", ")));
}

std::vector<std::string> PolicyKindNames() {
  std::vector<std::string> names;
  for (const auto& [k, n] : kNames) names.emplace_back(n);
  return names;
}

absl::StatusOr<std::unique_ptr<KvCachePolicy>> MakeKvCachePolicy(const PolicyConfig& config) {
  PAGEDKV_RETURN_IF_ERROR(config.model.Validate());
  if (config.capacity_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy ", AbslView(PolicyKindName(config.kind)), ": KV capacity must be >= 1 token, got ",
        config.capacity_tokens, "; give the GPU more memory or the model fewer weights"));
  }
  if (config.max_model_len < 1 || config.max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy ", AbslView(PolicyKindName(config.kind)), ": max_model_len (", config.max_model_len,
        ") and max_new_tokens (", config.max_new_tokens, ") must be >= 1"));
  }
  if (config.kind == PolicyKind::kPaged) return internal::MakePagedPolicy(config);
  return internal::MakeContiguousPolicy(config);
}

}  // namespace pagedkv
