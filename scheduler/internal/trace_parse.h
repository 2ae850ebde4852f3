// Private to scheduler/ (and its fuzz targets): the trace loaders of trace.h on text already in
// memory, so that every format can be parsed without a file.
//
//   absl::StatusOr<Workload> w = internal::ParseTraceText("t.csv", text, {}, std::nullopt);
#ifndef PAGEDKV_SCHEDULER_INTERNAL_TRACE_PARSE_H_
#define PAGEDKV_SCHEDULER_INTERNAL_TRACE_PARSE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "pagedkv/scheduler/trace.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv::internal {

// Parses `data`, the contents of the trace file `path` (named in errors; its extension takes part
// in sniffing), in `format`, or in the format sniffed from the extension and first line when
// absent. Errors and limits as the Load*Trace functions.
absl::StatusOr<Workload> ParseTraceText(const std::string& path, const std::string& data,
                                        const WorkloadOptions& options,
                                        std::optional<TraceFormat> format);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_TRACE_PARSE_H_
