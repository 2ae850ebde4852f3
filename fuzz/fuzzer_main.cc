// The libFuzzer entry point of one target of fuzz_targets.h, chosen at compile time with
// -DPAGEDKV_FUZZ_TARGET=FuzzModelJson (fuzz/CMakeLists.txt builds one binary per target).
#include <cstdio>
#include <cstdlib>

#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string broken = pagedkv::fuzz::PAGEDKV_FUZZ_TARGET(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "property violated: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
