// Number formatting shared by the report's tables (report.cc, report_cluster.cc). NaN (a field
// absent from the data files) is written as a dash.
//
//   Percent(0.123) == "12.3%";  Seconds(0.0042) == "4.2 ms";  Grouped(19366) == "19,366"
#ifndef PAGEDKV_SCHEDULER_INTERNAL_REPORT_FORMAT_H_
#define PAGEDKV_SCHEDULER_INTERNAL_REPORT_FORMAT_H_

#include <string>

namespace pagedkv::internal {

inline constexpr const char* kMissing = "&ndash;";

std::string Grouped(double v);  // "19,366"
std::string Fixed(double v, int decimals);
std::string Percent(double fraction);  // "12.3%"
std::string Seconds(double s);         // "4.2 ms", "1.25 s"
std::string Bytes(double b);           // binary units: "1.5 GiB"

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_REPORT_FORMAT_H_
