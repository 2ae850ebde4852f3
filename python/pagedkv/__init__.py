"""pagedkv: a paged KV-cache memory manager for LLM serving, usable in-process from Python.

The C++ library does the work; this package re-exports its bindings (``pagedkv._pagedkv``) and
adds a few conveniences written in Python. Areas of the library that were not built into the
extension are absent (``pagedkv.bound_areas`` lists those present).

    import numpy as np, pagedkv
    spec = pagedkv.ModelSpec(name="toy", num_layers=2, num_q_heads=4, num_kv_heads=2,
                             head_dim=16, kv_dtype="fp32")
    bm = pagedkv.BlockManager(spec, pagedkv.CacheConfig(gpu_num_blocks=64, block_size_tokens=16))
    bm.add_sequence(1, [11, 12, 13])
    layout = bm.build_batch([1], num_new_tokens=3)       # CSR page table + slot_mapping
    cache = bm.kv_cache(group=0)                         # NumPy view of the pool memory

pagedkv.client (imported on its own: `import pagedkv.client as kv`) is the client of
`pagedkv serve`, the manager as a service that engine processes share (docs/service.md).

With the scheduler area built, pagedkv.Scheduler drives a KvCachePolicy
(pagedkv.make_kv_cache_policy) and pagedkv.simulate replays workloads; see
examples/python_engine.py and docs/python.md.

Errors: a failed call raises ValueError (invalid argument), KeyError (unknown sequence or
name), pagedkv.OutOfBlocks (a MemoryError: not enough free blocks) or RuntimeError (anything
else, e.g. a sequence in the wrong state), with the library's message; the state is unchanged.
"""

from . import _pagedkv
from ._pagedkv import *  # noqa: F401,F403  (the bound API)
from ._pagedkv import OutOfBlocks  # noqa: F401

bound_areas = tuple(_pagedkv._bound_areas)
__version__ = "0.1.0"

if hasattr(_pagedkv, "BlockManager"):

    class BlockManager(_pagedkv.BlockManager):
        __doc__ = _pagedkv.BlockManager.__doc__

        def __init__(self, spec, config):
            """Builds one pool per KV group and tier (see the class docstring).

            ValueError for an invalid spec or config; OutOfBlocks when the pool memory cannot
            be allocated. Keeps `spec` and `config` as attributes.
            """
            super().__init__(spec, config)
            self.spec = spec
            self.config = config

        def kv_cache(self, group=0, tier=_pagedkv.Tier.GPU):
            """Zero-copy NumPy view of a pool's memory (host memory only).

            Shape [num_blocks, layers_in_group, 2 (K, V), num_kv_heads, block_size, head_dim],
            dtype float32 / float16 (uint16 bits for bf16). The view keeps the manager alive.
            RuntimeError for a virtual pool (no memory) or CUDA device memory (use pool_ptr()).
            """
            return self._pool_array(group, tier, self.spec.num_kv_heads, self.spec.head_dim,
                                    self.spec.kv_dtype)

if hasattr(_pagedkv, "paged_attention_decode"):

    def attention_decode(kv_cache, layer_in_group, q, layout, **kwargs):
        """paged_attention_decode with the page table of a BatchLayout (one query per entry)."""
        return _pagedkv.paged_attention_decode(kv_cache, layer_in_group, q, layout.page_indptr,
                                               layout.page_indices, layout.last_page_len,
                                               **kwargs)

    def attention_extend(kv_cache, layer_in_group, q, layout, **kwargs):
        """paged_attention_extend with a BatchLayout: its query_indptr gives each entry's rows."""
        return _pagedkv.paged_attention_extend(kv_cache, layer_in_group, q, layout.query_indptr,
                                               layout.page_indptr, layout.page_indices,
                                               layout.last_page_len, **kwargs)

    def execute_cache_ops(bm, ops):
        """Runs a CacheOps on the CPU pools of `bm`: every swap_out, then swap_in, then copies.

        Needs host-memory pools (not virtual, not CUDA device memory). For device pools use
        pagedkv.raw.swap_blocks / copy_blocks with bm.pool_ptr().
        """
        for g in ops.groups:
            if g.empty():
                continue
            gpu = bm.kv_cache(g.group, _pagedkv.Tier.GPU)
            if len(g.swap_out) or len(g.swap_in):
                host = bm.kv_cache(g.group, _pagedkv.Tier.HOST)
                if len(g.swap_out):
                    _pagedkv.swap_blocks(gpu, host, g.swap_out)
                if len(g.swap_in):
                    _pagedkv.swap_blocks(host, gpu, g.swap_in)
            if len(g.copies):
                _pagedkv.copy_blocks(gpu, g.copies)

__all__ = [name for name in dir() if not name.startswith("_")]
