#include "pagedkv/attention/cpu_worker_pool.h"

#include <algorithm>
#include <atomic>

namespace pagedkv {

struct CpuWorkerPool::Job {
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t num_items = 0;
  std::atomic<int64_t> next{0};
};

CpuWorkerPool::CpuWorkerPool(int num_threads) {
  if (num_threads <= 0) {
    num_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  workers_.reserve(num_threads - 1);
  for (int i = 0; i + 1 < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

CpuWorkerPool::~CpuWorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void CpuWorkerPool::RunItems(Job* job) {
  for (;;) {
    const int64_t i = job->next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job->num_items) return;
    (*job->fn)(i);
  }
}

void CpuWorkerPool::WorkerLoop() {
  uint64_t seen_generation = 0;
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen_generation; });
      if (stop_) return;
      seen_generation = generation_;
      job = job_;
      // Woken after the caller already finished this loop alone: nothing to do.
      if (job == nullptr) continue;
      ++active_;
    }
    RunItems(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
    }
    done_cv_.notify_all();
  }
}

void CpuWorkerPool::ParallelFor(int64_t num_items, const std::function<void(int64_t)>& fn) {
  if (num_items <= 0) return;
  if (workers_.empty() || num_items == 1) {
    for (int64_t i = 0; i < num_items; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mu_);
  Job job;
  job.fn = &fn;
  job.num_items = num_items;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &job;
    ++generation_;
  }
  work_cv_.notify_all();
  RunItems(&job);
  // Workers that joined this loop hold a pointer to `job` until they leave RunItems: wait for
  // them, then clear job_ under the same lock so that a worker waking late finds nothing.
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return active_ == 0; });
  job_ = nullptr;
}

}  // namespace pagedkv
