#include "internal/extent_allocator.h"

#include "internal/buddy_allocator.h"
#include "internal/first_fit_allocator.h"

namespace pagedkv::internal {

std::unique_ptr<ExtentAllocator> MakeExtentAllocator(ExtentAllocatorKind kind,
                                                     int64_t capacity_tokens) {
  if (kind == ExtentAllocatorKind::kBuddy) return std::make_unique<BuddyAllocator>(capacity_tokens);
  return std::make_unique<FirstFitAllocator>(capacity_tokens);
}

}  // namespace pagedkv::internal
