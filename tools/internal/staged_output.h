// An output directory written all or nothing: a command writes its files into a staging
// directory inside the output directory and moves them into place only once every one was
// written, so a failed run leaves no partial or mixed set behind. Creating it up front also finds
// an unusable --out before any work is done.
//
//   PAGEDKV_ASSIGN_OR_RETURN(StagedOutput out, StagedOutput::Create("results", {"summary.json"}));
//   WriteFiles(out.staging_dir());
//   PAGEDKV_RETURN_IF_ERROR(out.Commit());   // results/summary.json appears only now
#ifndef PAGEDKV_TOOLS_INTERNAL_STAGED_OUTPUT_H_
#define PAGEDKV_TOOLS_INTERNAL_STAGED_OUTPUT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv::cli {

class StagedOutput {
 public:
  // Creates `dir` (with its parents) when missing and an empty staging directory inside it.
  // InvalidArgument saying what is wrong when `dir` cannot be created or written, or when one of
  // `names` exists in it as something other than a regular file (a directory named report.html).
  static absl::StatusOr<StagedOutput> Create(const std::string& dir,
                                             std::vector<std::string> names);
  StagedOutput(StagedOutput&&) noexcept;
  StagedOutput& operator=(StagedOutput&&) noexcept;
  ~StagedOutput();  // removes the staging directory and whatever is still in it

  const std::string& dir() const { return dir_; }
  const std::string& staging_dir() const { return staging_; }
  // `name` inside the staging directory.
  std::string StagingPath(const std::string& name) const;
  // Checks that every name was written to the staging directory and that no target became a
  // directory, then renames each into `dir` (same file system: each rename is atomic).
  // FailedPrecondition naming the file otherwise; nothing is moved then.
  absl::Status Commit();

 private:
  StagedOutput() = default;
  std::string dir_;
  std::string staging_;
  std::vector<std::string> names_;
};

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_STAGED_OUTPUT_H_
