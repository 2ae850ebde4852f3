// Writes report.html for the browser test: make_report DATA_DIR OUT_PATH (see report.h).
#include <iostream>

#include "pagedkv/scheduler/report.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " DATA_DIR OUT_PATH\n";
    return 2;
  }
  absl::StatusOr<std::string> path = pagedkv::WriteReport(argv[1], {.out_path = argv[2]});
  if (!path.ok()) {
    std::cerr << "make_report: " << path.status().message() << "\n";
    return 1;
  }
  std::cout << "wrote " << *path << "\n";
  return 0;
}
