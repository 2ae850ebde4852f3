// GPU pools over CUDA IPC: the client's refusals (any build), and on a machine with a CUDA device
// the real thing: `pagedkv serve --strict-gpu` hands out a cudaIpcMemHandle for its GPU pool, this
// process opens it, writes K/V bytes through the device pointer, and the server's own swap_out
// copies them (CUDA) into the shared host pool, where they are read back through the memfd.
// Without CUDA in the build or without a device the device test skips with the reason: as of
// issue 12 it has never run on a GPU.
#include <signal.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/allocator/memory_pool.h"
#include "pagedkv/service/client.h"
#include "service/internal/cuda_ipc.h"
#include "tests/service/test_util.h"

#ifdef PAGEDKV_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace pagedkv::testing {
namespace {

using client::MappedPool;

v1::PoolHandle CudaHandle() {
  v1::PoolHandle h;
  h.set_kind(v1::POOL_KIND_CUDA_IPC);
  h.set_tier("gpu");
  h.set_num_blocks(4);
  h.set_bytes_per_block(256);
  h.set_map_bytes(1024);
  h.set_cuda_ipc_handle(std::string(service::internal::kCudaIpcHandleBytes, '\0'));
  return h;
}

TEST(CudaIpcTest, AHandleOfAnotherKindIsRefused) {
  v1::PoolHandle h = CudaHandle();
  h.set_kind(v1::POOL_KIND_MEMFD);
  absl::StatusOr<MappedPool> pool = MappedPool::OpenCudaIpc(h);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument) << pool.status();
}

TEST(CudaIpcTest, AHandleTooSmallForItsBlocksIsRefused) {
  v1::PoolHandle h = CudaHandle();
  h.set_map_bytes(1023);
  absl::StatusOr<MappedPool> pool = MappedPool::OpenCudaIpc(h);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument) << pool.status();
  EXPECT_NE(pool.status().message().find("1024"), std::string_view::npos) << pool.status();
}

TEST(CudaIpcTest, ABuildWithoutCudaSaysSoInsteadOfOpening) {
  if (service::internal::CudaIpcBuilt()) GTEST_SKIP() << "built with CUDA: the stub is not used";
  absl::StatusOr<MappedPool> pool = MappedPool::OpenCudaIpc(CudaHandle());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kUnimplemented) << pool.status();
  EXPECT_NE(pool.status().message().find("without CUDA"), std::string_view::npos);
}

TEST(CudaIpcTest, EngineWritesThroughTheIpcPoolAndTheServersSwapCopiesIt) {
#ifndef PAGEDKV_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA (PAGEDKV_CUDA=OFF or no nvcc): CUDA IPC pools not tested";
#else
  if (!CudaDeviceAvailable()) GTEST_SKIP() << "no usable CUDA device: CUDA IPC pools not tested";
  ServeProcess serve;
  const std::string model = WriteToyModel(serve.dir(), ToySpec());
  PAGEDKV_ASSERT_OK(serve.Start({"--model", model, "--gpu-blocks", "16", "--host-blocks", "16",
                                 "--block-size", "4", "--strict-gpu"}));
  auto c = client::Client::Connect({.target = serve.target()});
  ASSERT_TRUE(c.ok()) << c.status();
  auto session = client::Session::Open(**c, v1::OpenSessionRequest());
  ASSERT_TRUE(session.ok()) << session.status();
  auto pools = (*session)->MapPools();
  ASSERT_TRUE(pools.ok()) << pools.status();
  MappedPool* gpu = pools->Find(0, Tier::kGpu);
  MappedPool* host = pools->Find(0, Tier::kHost);
  ASSERT_NE(gpu, nullptr);
  ASSERT_NE(host, nullptr);
  ASSERT_TRUE(gpu->is_device_memory());
  EXPECT_EQ(gpu->handle().kind(), v1::POOL_KIND_CUDA_IPC);

  client::StepBuilder add;
  const std::vector<TokenId> prompt = {1, 2, 3, 4, 5};
  const std::vector<uint64_t> seqs = {1};
  add.Add(1, prompt).Batch(1, 5);
  auto r = (*session)->Step(add);
  ASSERT_TRUE(r.ok() && r->FirstError().ok());
  const BlockId gpu_block = r->layouts[0].page_indices[0];
  std::vector<std::byte> bytes(gpu->bytes_per_block());
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7 + 3);
  ASSERT_EQ(
      cudaMemcpy(gpu->BlockData(gpu_block), bytes.data(), bytes.size(), cudaMemcpyHostToDevice),
      cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  client::StepBuilder swap;
  swap.SwapOut(seqs);
  r = (*session)->Step(swap);
  ASSERT_TRUE(r.ok() && r->FirstError().ok());
  ASSERT_TRUE(r->ops_executed_by_server);
  ASSERT_FALSE(r->ops.groups.empty());
  ASSERT_FALSE(r->ops.groups[0].swap_out.empty());
  BlockId host_block = kInvalidBlockId;
  for (const BlockPair& p : r->ops.groups[0].swap_out) {
    if (p.src == gpu_block) host_block = p.dst;
  }
  ASSERT_NE(host_block, kInvalidBlockId);
  EXPECT_EQ(std::memcmp(host->BlockData(host_block), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(serve.Stop(SIGTERM), 0);
#endif
}

}  // namespace
}  // namespace pagedkv::testing
