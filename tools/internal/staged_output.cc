#include "tools/internal/staged_output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pagedkv::cli {
namespace {

namespace fs = std::filesystem;

// OK when `path` does not exist or is a regular file (it will be replaced).
absl::Status CheckReplaceable(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (S_ISREG(st.st_mode)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "'", path, "' exists and is ", S_ISDIR(st.st_mode) ? "a directory" : "not a file",
      "; remove it or choose another --out"));
}

}  // namespace

absl::StatusOr<StagedOutput> StagedOutput::Create(const std::string& dir,
                                                  std::vector<std::string> names) {
  if (dir.empty()) return absl::InvalidArgumentError("the output directory is empty");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create output directory '", dir, "': ", ec.message()));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("'", dir, "' is not a directory"));
  }
  for (const std::string& name : names) {
    if (absl::Status st = CheckReplaceable((fs::path(dir) / name).string()); !st.ok()) {
      return absl::InvalidArgumentError(st.message());
    }
  }
  std::string pattern = (fs::path(dir) / ".pagedkv-staging-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write into output directory '", dir, "': ", std::strerror(err)));
  }
  StagedOutput out;
  out.dir_ = dir;
  out.staging_ = std::move(pattern);
  out.names_ = std::move(names);
  return out;
}

StagedOutput::StagedOutput(StagedOutput&& other) noexcept
    : dir_(std::move(other.dir_)),
      staging_(std::exchange(other.staging_, std::string())),
      names_(std::move(other.names_)) {}

StagedOutput& StagedOutput::operator=(StagedOutput&& other) noexcept {
  if (this != &other) {
    this->~StagedOutput();
    dir_ = std::move(other.dir_);
    staging_ = std::exchange(other.staging_, std::string());
    names_ = std::move(other.names_);
  }
  return *this;
}

StagedOutput::~StagedOutput() {
  if (staging_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

std::string StagedOutput::StagingPath(const std::string& name) const {
  return (fs::path(staging_) / name).string();
}

absl::Status StagedOutput::Commit() {
  // Check everything first so that a failure moves nothing.
  for (const std::string& name : names_) {
    struct stat st;
    if (::stat(StagingPath(name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(name, " was not written"));
    }
    if (absl::Status s = CheckReplaceable((fs::path(dir_) / name).string()); !s.ok()) return s;
  }
  for (const std::string& name : names_) {
    const std::string target = (fs::path(dir_) / name).string();
    if (std::rename(StagingPath(name).c_str(), target.c_str()) != 0) {
      const int err = errno;
      return absl::FailedPreconditionError(absl::StrCat("cannot move ", name, " into place as '",
                                                        target, "': ", std::strerror(err)));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::cli
