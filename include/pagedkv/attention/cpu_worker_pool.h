// CpuWorkerPool: a fixed set of threads that runs parallel-for loops for the CPU attention path.
// Create one per engine and pass it in the options; without one each call starts its own threads
// (correct, but thread start-up costs tens of microseconds per call).
//
//   CpuWorkerPool pool(/*num_threads=*/0);  // 0 = all cores
//   pool.ParallelFor(num_items, [&](int64_t i) { Work(i); });
#ifndef PAGEDKV_ATTENTION_CPU_WORKER_POOL_H_
#define PAGEDKV_ATTENTION_CPU_WORKER_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pagedkv {

// States: idle (job_ == nullptr) -> running (job_ set, workers take items through an atomic
// counter) -> idle again when every participant has finished. ParallelFor calls are serialized
// by call_mu_; the calling thread takes items too.
class CpuWorkerPool {
 public:
  // num_threads: total threads working on a loop, the caller included; 0 = hardware concurrency.
  explicit CpuWorkerPool(int num_threads = 0);
  ~CpuWorkerPool();
  CpuWorkerPool(const CpuWorkerPool&) = delete;
  CpuWorkerPool& operator=(const CpuWorkerPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, num_items), spread over the threads; returns when all are done.
  // Items are taken one at a time in increasing order, so put the largest first.
  void ParallelFor(int64_t num_items, const std::function<void(int64_t)>& fn);

 private:
  struct Job;
  void WorkerLoop();
  static void RunItems(Job* job);

  std::mutex call_mu_;  // one ParallelFor at a time
  std::mutex mu_;       // guards job_, generation_, active_, stop_
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  int active_ = 0;  // workers still inside the current job
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace pagedkv

#endif  // PAGEDKV_ATTENTION_CPU_WORKER_POOL_H_
