// GPU paged decode: batch {1, 16, 64, 256} x context {512, 2k, 8k, 32k}, 32 query / 8 KV heads,
// head dim 128, bf16, block sizes 16 and 64, random page tables. Each timed run starts with a
// cold L2 (a flush buffer larger than L2 is rewritten first) and is timed with CUDA events; the
// median of --iters runs is reported in us, in GB/s (K and V read + q + out + page table), and
// as a percentage of this device's measured device-to-device copy bandwidth (read + write bytes).
//
//   gpu_decode_benchmark [--iters 20] [--batches 1,16] [--contexts 512,8192] [--block-sizes 16]
//                        [--csv out.csv]
// Prints a markdown table on stdout; --csv also writes the rows for benchmarks/gpu/compare_sdpa.py.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "pagedkv/attention/paged_attention.h"

namespace {

constexpr int32_t kQHeads = 32, kKvHeads = 8, kHeadDim = 128;

#define CUDA_OK(expr)                                                    \
  do {                                                                   \
    const cudaError_t err_ = (expr);                                     \
    if (err_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, \
                   cudaGetErrorString(err_));                            \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

std::vector<int64_t> ParseList(const char* s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

// Rewrites a buffer larger than L2 so the next kernel starts with nothing of its inputs cached.
class L2Flusher {
 public:
  L2Flusher() {
    int device = 0, l2_bytes = 0;
    CUDA_OK(cudaGetDevice(&device));
    CUDA_OK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
    bytes_ = std::max<size_t>(size_t(l2_bytes) * 4, size_t(256) << 20);
    CUDA_OK(cudaMalloc(&buf_, bytes_));
  }
  ~L2Flusher() { cudaFree(buf_); }
  void Flush(cudaStream_t s) { CUDA_OK(cudaMemsetAsync(buf_, flip_++ & 1, bytes_, s)); }

 private:
  void* buf_ = nullptr;
  size_t bytes_ = 0;
  int flip_ = 0;
};

float Median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device cudaMemcpy of 1 GiB; GB/s counts the bytes read plus the bytes written.
double MeasureCopyGBps(cudaStream_t s) {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  CUDA_OK(cudaMalloc(&a, bytes));
  CUDA_OK(cudaMalloc(&b, bytes));
  CUDA_OK(cudaMemsetAsync(a, 1, bytes, s));
  cudaEvent_t e0, e1;
  CUDA_OK(cudaEventCreate(&e0));
  CUDA_OK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < 10; ++i) {
    CUDA_OK(cudaEventRecord(e0, s));
    CUDA_OK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
    CUDA_OK(cudaEventRecord(e1, s));
    CUDA_OK(cudaEventSynchronize(e1));
    float t = 0;
    CUDA_OK(cudaEventElapsedTime(&t, e0, e1));
    if (i > 0) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (double(Median(ms)) * 1e-3) / 1e9;
}

// Random bf16 values of magnitude in [0.5, 1), either sign, generated on the host in chunks.
void FillDeviceBf16(void* dst, size_t elems, uint64_t seed) {
  const size_t chunk = size_t(1) << 24;
  std::vector<uint16_t> host(std::min(chunk, elems));
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t done = 0; done < elems; done += host.size()) {
    const size_t n = std::min(host.size(), elems - done);
    for (size_t i = 0; i < n; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      host[i] = static_cast<uint16_t>(0x3f00 | (x & 0x7f) | ((x >> 20) & 0x8000));
    }
    CUDA_OK(
        cudaMemcpy(static_cast<uint16_t*>(dst) + done, host.data(), n * 2, cudaMemcpyHostToDevice));
  }
}

struct Row {
  int32_t block_size, batch, context;
  double us, gbps, pct_copy;
};

Row RunOne(int32_t block_size, int32_t batch, int32_t context, int iters, double copy_gbps,
           L2Flusher& flusher, cudaStream_t s) {
  const int32_t pages_per_seq = (context + block_size - 1) / block_size;
  const int32_t num_blocks = batch * pages_per_seq;
  pagedkv::PagedKVView view = pagedkv::PagedKVView::ForLayer(
      nullptr, pagedkv::DType::kBf16, num_blocks, 1, 0, kKvHeads, kHeadDim, block_size);
  const size_t pool_elems = size_t(view.block_stride_elems) * num_blocks;
  void* pool = nullptr;
  CUDA_OK(cudaMalloc(&pool, pool_elems * 2));
  FillDeviceBf16(pool, pool_elems, 1);

  std::vector<int32_t> indptr(batch + 1), indices(num_blocks), last(batch);
  std::iota(indices.begin(), indices.end(), 0);
  std::shuffle(indices.begin(), indices.end(), std::mt19937_64(7));
  for (int32_t b = 0; b <= batch; ++b) indptr[b] = b * pages_per_seq;
  for (int32_t b = 0; b < batch; ++b) last[b] = context - (pages_per_seq - 1) * block_size;
  int32_t *d_indptr, *d_indices, *d_last;
  CUDA_OK(cudaMalloc(&d_indptr, indptr.size() * 4));
  CUDA_OK(cudaMalloc(&d_indices, indices.size() * 4));
  CUDA_OK(cudaMalloc(&d_last, last.size() * 4));
  CUDA_OK(cudaMemcpy(d_indptr, indptr.data(), indptr.size() * 4, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(d_indices, indices.data(), indices.size() * 4, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(d_last, last.data(), last.size() * 4, cudaMemcpyHostToDevice));
  view.pool = pool;
  view.batch_size = batch;
  view.page_indptr = d_indptr;
  view.page_indices = d_indices;
  view.last_page_len = d_last;

  const size_t q_elems = size_t(batch) * kQHeads * kHeadDim;
  void *q, *out;
  CUDA_OK(cudaMalloc(&q, q_elems * 2));
  CUDA_OK(cudaMalloc(&out, q_elems * 2));
  FillDeviceBf16(q, q_elems, 2);
  const pagedkv::QueryBatch qb{q, out, pagedkv::DType::kBf16, kQHeads, batch, nullptr};
  pagedkv::AttentionOptions opts;
  opts.backend = pagedkv::Backend::kCuda;
  opts.cuda_stream = s;
  opts.max_kv_len_hint = context;

  cudaEvent_t e0, e1;
  CUDA_OK(cudaEventCreate(&e0));
  CUDA_OK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < iters + 2; ++i) {  // two warm-up runs
    flusher.Flush(s);
    CUDA_OK(cudaEventRecord(e0, s));
    const absl::Status st = pagedkv::PagedAttentionDecode(view, qb, opts);
    if (!st.ok()) {
      std::fprintf(stderr, "decode failed: %s\n", std::string(st.message()).c_str());
      std::exit(1);
    }
    CUDA_OK(cudaEventRecord(e1, s));
    CUDA_OK(cudaEventSynchronize(e1));
    float t = 0;
    CUDA_OK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 2) ms.push_back(t);
  }
  const double sec = double(Median(ms)) * 1e-3;
  const double bytes = double(batch) * context * 2 * kKvHeads * kHeadDim * 2 +
                       2.0 * double(q_elems) * 2 + 4.0 * (double(num_blocks) + 2.0 * batch + 1.0);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(q);
  cudaFree(out);
  cudaFree(d_indptr);
  cudaFree(d_indices);
  cudaFree(d_last);
  cudaFree(pool);
  const double gbps = bytes / sec / 1e9;
  return {block_size, batch, context, sec * 1e6, gbps, 100.0 * gbps / copy_gbps};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> batches = {1, 16, 64, 256}, contexts = {512, 2048, 8192, 32768},
                       block_sizes = {16, 64};
  int iters = 20;
  const char* csv_path = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--iters")) {
      iters = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--batches")) {
      batches = ParseList(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--contexts")) {
      contexts = ParseList(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--block-sizes")) {
      block_sizes = ParseList(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--csv")) {
      csv_path = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (!pagedkv::AttentionCudaDeviceAvailable()) {
    std::fprintf(stderr, "no usable CUDA device: this benchmark needs a GPU\n");
    return 3;
  }
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t s;
  CUDA_OK(cudaStreamCreate(&s));
  const double copy_gbps = MeasureCopyGBps(s);
  L2Flusher flusher;
  std::printf(
      "device: %s; D2D copy %.0f GB/s (read + write); 32 q / 8 kv heads, head_dim 128, "
      "bf16, random page table, cold L2, median of %d\n\n",
      prop.name, copy_gbps, iters);
  std::printf("| block | batch | context | us | GB/s | %% of copy BW |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv) std::fprintf(csv, "block_size,batch,context,us,gbps,pct_copy,copy_gbps,device\n");
  for (int64_t bs : block_sizes) {
    for (int64_t b : batches) {
      for (int64_t c : contexts) {
        const Row r = RunOne(int32_t(bs), int32_t(b), int32_t(c), iters, copy_gbps, flusher, s);
        std::printf("| %d | %d | %d | %.1f | %.0f | %.0f%% |\n", r.block_size, r.batch, r.context,
                    r.us, r.gbps, r.pct_copy);
        std::fflush(stdout);
        if (csv) {
          std::fprintf(csv, "%d,%d,%d,%.3f,%.2f,%.2f,%.2f,%s\n", r.block_size, r.batch, r.context,
                       r.us, r.gbps, r.pct_copy, copy_gbps, prop.name);
        }
      }
    }
  }
  if (csv) std::fclose(csv);
  cudaStreamDestroy(s);
  return 0;
}
