#include "pagedkv/scheduler/report.h"

namespace pagedkv {

absl::StatusOr<std::string> RenderReport(const std::string& dir, const ReportOptions& options) {
  return absl::UnimplementedError("report writer is being written");
}

absl::StatusOr<std::string> WriteReport(const std::string& dir, const ReportOptions& options) {
  return absl::UnimplementedError("report writer is being written");
}

}  // namespace pagedkv
