// The cluster section of the HTML report (report.cc): for runs of several replicas behind a
// router, where prompt tokens came from (a replica's prefix cache, the remote tier, or compute),
// how evenly each router spread the requests, and a table per replica. Empty when no run has
// replicas.
//
//   html += ClusterSection(summary, [&](const std::string& run) { return order.IndexOf(run); });
#ifndef PAGEDKV_SCHEDULER_INTERNAL_REPORT_CLUSTER_H_
#define PAGEDKV_SCHEDULER_INTERNAL_REPORT_CLUSTER_H_

#include <functional>
#include <string>

#include "internal/report_data.h"

namespace pagedkv::internal {

// `color_of` gives a run's color index (the same in every chart of the page).
std::string ClusterSection(const ReportSummary& summary,
                           const std::function<int(const std::string& run)>& color_of);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_REPORT_CLUSTER_H_
