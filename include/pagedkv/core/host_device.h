// PAGEDKV_HOST_DEVICE marks functions callable from CPU code and CUDA kernels alike (empty without
// nvcc), so the CPU path and the CUDA path share one indexing implementation.
#ifndef PAGEDKV_CORE_HOST_DEVICE_H_
#define PAGEDKV_CORE_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define PAGEDKV_HOST_DEVICE __host__ __device__
#define PAGEDKV_INLINE __forceinline__
#else
#define PAGEDKV_HOST_DEVICE
#define PAGEDKV_INLINE inline
#endif

#endif  // PAGEDKV_CORE_HOST_DEVICE_H_
