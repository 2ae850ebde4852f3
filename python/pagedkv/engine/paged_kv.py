"""The paged side of the engine: K/V in a pagedkv BlockManager's pools, seen by torch without a
copy, written with pagedkv's write_kv through a batch's slot_mapping and read by pagedkv's paged
attention kernels.

    kv = make_paged_kv(bm, spec, device="cpu")   # CpuPagedKV, or RawPagedKV on CUDA
    kv.execute_cache_ops(ops)                    # swap_out, swap_in, copy-on-write copies
    kv.begin(layout)                             # the step's BatchLayout (bm.build_batch)
    logits = model.forward(tokens, positions, kv.attend, rows)

CPU: the pools are host memory owned by the manager; bm's NumPy pool view and a torch tensor
over the same bytes (torch.from_numpy) share one address (kv.gpu_tensor.data_ptr() ==
bm.pool_ptr()). The model's q/k/v torch tensors reach the kernels as NumPy views of their own
memory (Tensor.numpy()), and the kernels write the attention output straight into a torch
tensor's memory.

CUDA (RawPagedKV): the pools are device memory (and pinned host memory for swap) owned by the
manager; torch sees the device pool through __cuda_array_interface__, and the kernels run
through pagedkv.raw on the current torch stream with tensor.data_ptr() addresses. Requires a
pagedkv build with PAGEDKV_CUDA and the kernels' limits: fp16/bf16 KV, head_dim 64/128/256,
block size 8..128. The same class with backend 'cpu' runs the raw-address path on host pools
with the CPU kernels, which is how a machine without a GPU tests it.
"""

import time

import numpy as np
import torch

import pagedkv

_TORCH_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def kv_dtype_label(spec):
    return spec.kv_dtype.label


class _PagedKVBase:
    def __init__(self, bm, spec):
        if bm.num_groups != 1:
            raise ValueError(f"the engine serves models with one KV group (full attention in "
                             f"every layer); this manager has {bm.num_groups}")
        self.bm = bm
        self.spec = spec
        self.block_size = bm.block_size
        info = bm.group_info(0)
        self.num_gpu_blocks = info.gpu_num_blocks
        self.num_host_blocks = info.host_num_blocks
        self.bytes_per_block = info.bytes_per_block
        self.num_layers = len(info.group.layers)
        self.layer_in_group = [bm.locate_layer(layer).layer_in_group
                               for layer in range(spec.num_layers)]
        self.num_q_heads = spec.num_q_heads
        self.layout = None
        # Seconds spent in pagedkv's kernels (write_kv + attention) and cache ops.
        self.timing = {"attention_s": 0.0, "cache_ops_s": 0.0}
        self.counts = {"swap_out_blocks": 0, "swap_in_blocks": 0, "copied_blocks": 0}

    def pool_shape(self, num_blocks):
        return (num_blocks, self.num_layers, 2, self.spec.num_kv_heads, self.block_size,
                self.spec.head_dim)


class CpuPagedKV(_PagedKVBase):
    """Host-memory pools; pagedkv's CPU kernels."""

    def __init__(self, bm, spec, num_threads=1):
        super().__init__(bm, spec)
        if bm.pool_is_device_memory(0):
            raise ValueError("CpuPagedKV needs host-memory pools; this manager's pool is CUDA "
                             "device memory (use CudaPagedKV)")
        label = kv_dtype_label(spec)
        if label not in ("fp32", "fp16"):
            raise ValueError(f"the CPU engine computes with fp32 or fp16 KV, got {label}")
        self.dtype = _TORCH_DTYPE[label]
        # Zero-copy: NumPy views of the manager's pools, and torch tensors over the same bytes.
        self.gpu = pool_array(bm, spec, pagedkv.Tier.GPU)
        self.gpu_tensor = torch.from_numpy(self.gpu)
        self.host = None
        if bm.has_host_tier:
            self.host = pool_array(bm, spec, pagedkv.Tier.HOST)
        self.workers = pagedkv.CpuWorkerPool(num_threads)
        self._decode = False

    def execute_cache_ops(self, ops):
        """Every swap_out, then every swap_in, then the copy-on-write copies (the manager's
        order)."""
        t0 = time.perf_counter()
        for g in ops.groups:
            if g.empty():
                continue
            if len(g.swap_out):
                pagedkv.swap_blocks(self.gpu, self.host, g.swap_out)
                self.counts["swap_out_blocks"] += len(g.swap_out)
            if len(g.swap_in):
                pagedkv.swap_blocks(self.host, self.gpu, g.swap_in)
                self.counts["swap_in_blocks"] += len(g.swap_in)
            if len(g.copies):
                pagedkv.copy_blocks(self.gpu, g.copies)
                self.counts["copied_blocks"] += len(g.copies)
        self.timing["cache_ops_s"] += time.perf_counter() - t0

    def begin(self, layout):
        """Uses `layout` (BlockManager.build_batch of this step) for the next forward pass."""
        self.layout = layout
        self._decode = layout.num_new_tokens == layout.batch_size

    def attend(self, layer, q, k, v):
        """write_kv of the new K/V through the slot mapping, then paged attention (decode when
        every sequence has one query token, extend otherwise). Returns [T, num_q_heads, D]."""
        t0 = time.perf_counter()
        lay = self.layout
        li = self.layer_in_group[layer]
        out = torch.empty(q.shape, dtype=torch.float32)
        pagedkv.write_kv(self.gpu, li, lay.slot_mapping, k.numpy(), v.numpy())
        qn = q.numpy() if q.dtype == torch.float32 else q.float().numpy()
        if self._decode:
            pagedkv.attention_decode(self.gpu, li, qn, lay, out=out.numpy(),
                                     cpu_pool=self.workers)
        else:
            pagedkv.attention_extend(self.gpu, li, qn, lay, out=out.numpy(),
                                     cpu_pool=self.workers)
        self.timing["attention_s"] += time.perf_counter() - t0
        return out if q.dtype == torch.float32 else out.to(q.dtype)


class _CudaArrayInterface:
    """Lets torch wrap device memory it does not own (the manager's pool) without a copy."""

    def __init__(self, ptr, shape, typestr):
        self.__cuda_array_interface__ = {"data": (int(ptr), False), "shape": tuple(shape),
                                         "typestr": typestr, "version": 2, "strides": None}


class RawPagedKV(_PagedKVBase):
    """pagedkv's kernels on raw addresses (pagedkv.raw) with tensor.data_ptr(): the CUDA path
    (backend 'cuda': device pools, the current torch stream). With backend 'cpu' the same code
    runs on host pools and the CPU kernels, so a machine without a GPU tests everything in this
    path but the device itself (test_engine.py runs the engine this way)."""

    def __init__(self, bm, spec, device="cuda", backend="cuda"):
        super().__init__(bm, spec)
        if backend not in ("cuda", "cpu"):
            raise ValueError(f"backend must be 'cuda' or 'cpu', got {backend!r}")
        self.backend = backend
        self.device = torch.device(device)
        label = kv_dtype_label(spec)
        if backend == "cuda":
            if not pagedkv.cuda_device_available():
                raise RuntimeError("the CUDA path needs pagedkv built with CUDA "
                                   "(-DPAGEDKV_CUDA=ON) and a usable device; use device='cpu'")
            if not bm.pool_is_device_memory(0):
                raise RuntimeError("the manager's GPU pool is not device memory (it fell back to "
                                   "host memory); check the CUDA device")
            if label not in ("fp16", "bf16"):
                raise ValueError(f"the CUDA kernels store fp16 or bf16 KV, got {label}")
            if spec.head_dim not in (64, 128, 256):
                raise ValueError(f"the CUDA kernels need head_dim 64, 128 or 256, got "
                                 f"{spec.head_dim}")
            if self.block_size not in (8, 16, 32, 64, 128):
                raise ValueError(f"the CUDA kernels need a block size of 8..128 tokens (a power "
                                 f"of two), got {self.block_size}")
        elif bm.pool_is_device_memory(0) or label not in ("fp32", "fp16"):
            raise ValueError("backend 'cpu' needs host pools of fp32 or fp16 KV")
        self.dtype = _TORCH_DTYPE[label]
        self.gpu_ptr = bm.pool_ptr(0, pagedkv.Tier.GPU)
        if backend == "cuda":
            bits = torch.as_tensor(_CudaArrayInterface(
                self.gpu_ptr, self.pool_shape(self.num_gpu_blocks), "<i2"), device=self.device)
            self.gpu_tensor = bits.view(self.dtype)  # the pool, zero-copy
        else:
            self.gpu_tensor = torch.from_numpy(pool_array(bm, spec, pagedkv.Tier.GPU))
        self.host_ptr = bm.pool_ptr(0, pagedkv.Tier.HOST) if bm.has_host_tier else 0
        self.views = [pagedkv.raw.PagedKVView(
            pool=self.gpu_ptr, dtype=spec.kv_dtype, num_blocks=self.num_gpu_blocks,
            layers_in_group=self.num_layers, layer_in_group=li, num_kv_heads=spec.num_kv_heads,
            head_dim=spec.head_dim, block_size=self.block_size) for li in range(self.num_layers)]
        self._tables = None
        self._qo_indptr = 0
        self._max_len = 0

    def _stream(self):
        if self.backend == "cuda":
            return torch.cuda.current_stream(self.device).cuda_stream
        return 0

    def execute_cache_ops(self, ops):
        t0 = time.perf_counter()
        stream = self._stream()
        for g in ops.groups:
            if g.empty():
                continue
            if len(g.swap_out):
                pagedkv.raw.swap_blocks(self.gpu_ptr, self.num_gpu_blocks, self.host_ptr,
                                        self.num_host_blocks, self.bytes_per_block, g.swap_out,
                                        backend=self.backend, stream=stream)
                self.counts["swap_out_blocks"] += len(g.swap_out)
            if len(g.swap_in):
                pagedkv.raw.swap_blocks(self.host_ptr, self.num_host_blocks, self.gpu_ptr,
                                        self.num_gpu_blocks, self.bytes_per_block, g.swap_in,
                                        backend=self.backend, stream=stream)
                self.counts["swap_in_blocks"] += len(g.swap_in)
            if len(g.copies):
                pagedkv.raw.copy_blocks(self.gpu_ptr, self.bytes_per_block, self.num_gpu_blocks,
                                        g.copies, backend=self.backend, stream=stream)
                self.counts["copied_blocks"] += len(g.copies)
        self.timing["cache_ops_s"] += time.perf_counter() - t0

    def begin(self, layout):
        """Puts the step's page table, query offsets and slot mapping where the kernels read
        them (one host-to-device copy each on CUDA) and points every layer's view at them."""
        self.layout = layout
        b = layout.batch_size
        ints = np.concatenate([layout.page_indptr, layout.page_indices, layout.last_page_len,
                               layout.query_indptr]).astype(np.int32, copy=False)
        tables = torch.from_numpy(ints).to(self.device)
        slots = torch.from_numpy(layout.slot_mapping).to(self.device)
        elem, base = tables.element_size(), tables.data_ptr()
        offsets = np.cumsum([0, b + 1, len(layout.page_indices), b])
        for view in self.views:
            view.batch_size = b
            view.page_indptr = base + int(offsets[0]) * elem
            view.page_indices = base + int(offsets[1]) * elem
            view.last_page_len = base + int(offsets[2]) * elem
            view.num_slots = len(layout.slot_mapping)
            view.slot_mapping = slots.data_ptr()
        self._qo_indptr = base + int(offsets[3]) * elem
        # Alive until the kernels that read them have run (the caching allocator reuses freed
        # memory in stream order, after them).
        self._tables = (tables, slots)
        pages = np.diff(layout.page_indptr)
        self._max_len = int(pages.max()) * self.block_size if b else 0

    def attend(self, layer, q, k, v):
        t0 = time.perf_counter()
        view = self.views[self.layer_in_group[layer]]
        stream = self._stream()
        q, k, v = (x.to(self.dtype).contiguous() for x in (q, k, v))
        out = torch.empty_like(q)
        pagedkv.raw.write_kv(view, k.data_ptr(), v.data_ptr(), backend=self.backend,
                             stream=stream)
        pagedkv.raw.paged_attention_extend(
            view, q.data_ptr(), out.data_ptr(), dtype=self.spec.kv_dtype,
            num_q_heads=self.num_q_heads, num_tokens=q.shape[0], qo_indptr=self._qo_indptr,
            backend=self.backend, stream=stream, max_kv_len_hint=self._max_len)
        self.timing["attention_s"] += time.perf_counter() - t0
        return out


def CudaPagedKV(bm, spec, device="cuda"):  # noqa: N802 (reads as the class it builds)
    """Device pools and pagedkv's CUDA kernels (RawPagedKV with backend 'cuda')."""
    return RawPagedKV(bm, spec, device, backend="cuda")


def pool_array(bm, spec, tier=pagedkv.Tier.GPU, group=0):
    """Zero-copy NumPy view [num_blocks, layers, 2, kv_heads, block_size, head_dim] of a
    host-memory pool of any BlockManager (also the one of a Scheduler's policy, which has no
    kv_cache() method); torch.from_numpy() of it is the same memory."""
    return bm._pool_array(group, tier, spec.num_kv_heads, spec.head_dim, spec.kv_dtype)


def make_paged_kv(bm, spec, device="cpu", num_threads=1, kernels="auto"):
    """The pools and kernels of an engine: kernels 'auto' is CpuPagedKV on a CPU device and
    RawPagedKV (CUDA) on a CUDA device; 'numpy' forces CpuPagedKV, 'raw' forces RawPagedKV
    (on the CPU: the raw-address path with the CPU kernels)."""
    cuda = torch.device(device).type == "cuda"
    if kernels not in ("auto", "numpy", "raw"):
        raise ValueError(f"kernels must be 'auto', 'numpy' or 'raw', got {kernels!r}")
    if cuda and kernels == "numpy":
        raise ValueError("kernels 'numpy' runs on host pools only; use 'auto' or 'raw' on CUDA")
    if cuda or kernels == "raw":
        return RawPagedKV(bm, spec, device, backend="cuda" if cuda else "cpu")
    return CpuPagedKV(bm, spec, num_threads)


def gpu_tier_for(device):
    """The pagedkv tier of the engine's primary pool: device memory on CUDA, host otherwise."""
    return pagedkv.Tier.GPU if torch.device(device).type == "cuda" else pagedkv.Tier.HOST
