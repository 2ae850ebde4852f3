// The libFuzzer targets of pagedkv's parsers and argument checks, as plain functions so that the
// same code runs under libFuzzer (fuzzer_main.cc, one binary per target) and in the regression
// test (tests/fuzz/fuzz_regression_test.cc, which feeds every seed and every kept crash input).
// Each returns "" when every property held for the input, else what was broken; the fuzzer
// aborts on a non-empty result, the test fails.
//
//   std::string broken = pagedkv::fuzz::FuzzModelJson(data, size);
#ifndef PAGEDKV_FUZZ_FUZZ_TARGETS_H_
#define PAGEDKV_FUZZ_FUZZ_TARGETS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace pagedkv::fuzz {

// The block manager under a stream of operations chosen by the input (tests/block_manager/
// data_harness.h): every sequence reads back its own K/V, the invariants hold, nothing leaks.
std::string FuzzBlockManager(const uint8_t* data, size_t size);
// ModelSpec::FromJson: OK or InvalidArgument with a bounded message; an accepted spec validates
// and survives ToJson -> FromJson unchanged.
std::string FuzzModelJson(const uint8_t* data, size_t size);
// Every trace loader (Azure CSV, Mooncake JSONL, ShareGPT CSV, and the sniffed formats of .csv and
// .jsonl paths), with and without skip_bad_lines: an accepted workload validates and keeps the
// limits; an error is an InvalidArgument with a bounded message.
std::string FuzzTraces(const uint8_t* data, size_t size);
// ParseSyntheticSpec (canonical ToString round trip) and GenerateSynthetic of what it accepts
// (at most 64 requests; a valid workload or an InvalidArgument).
std::string FuzzSyntheticSpec(const uint8_t* data, size_t size);
// The readers of `pagedkv report`: summary.json, timeline.csv and requests.csv parsers.
std::string FuzzReportData(const uint8_t* data, size_t size);
// The checks of the Python bindings' array arguments (python/src/arg_checks.h) on array
// descriptions decoded from the input: every read stays inside the described elements, an
// accepted array's values are in range and equal to a reference read.
std::string FuzzPythonArgs(const uint8_t* data, size_t size);

}  // namespace pagedkv::fuzz

#endif  // PAGEDKV_FUZZ_FUZZ_TARGETS_H_
