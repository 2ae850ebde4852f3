"""Every BlockManager operation from Python: results, error mapping, NumPy arrays, lifetime."""

import gc

import numpy as np
import pytest

import pagedkv
from conftest import BLOCK_SIZES, make_manager, toy_spec


def test_shape_queries(manager):
    assert manager.block_size == 4
    assert manager.num_groups == 1
    assert manager.has_host_tier
    info = manager.group_info(0)
    assert info.gpu_num_blocks == 32 and info.host_num_blocks == 16
    assert info.bytes_per_block == 2 * 2 * 2 * 4 * 8 * 4  # layers, K/V, heads, tokens, dim, fp32
    assert list(info.group.layers) == [0, 1]
    loc = manager.locate_layer(1)
    assert (loc.group, loc.layer_in_group) == (0, 1)
    with pytest.raises(ValueError):
        manager.locate_layer(7)
    assert manager.pool_ptr(0) != 0
    assert not manager.pool_is_device_memory(0)
    assert manager.spec.num_layers == 2 and manager.config.gpu_num_blocks == 32


def test_add_append_free_and_queries(manager):
    info = manager.can_admit([1, 2, 3, 4, 5])
    assert info.can_admit and info.num_new_blocks == 2
    assert manager.stats().num_sequences == 0  # can_admit changes nothing
    r = manager.add_sequence(7, np.arange(5, dtype=np.int32))
    assert r.num_new_blocks == 2 and r.num_cached_tokens == 0
    assert 7 in manager and manager.contains(7) and len(manager) == 1
    assert manager.num_tokens(7) == 5
    assert manager.can_append(7, 3)
    assert manager.blocks_to_append(7, 3) == 0
    assert manager.blocks_to_append(7, 4) == 1
    manager.append_tokens(7, 99)          # a single int
    manager.append_tokens(7, [100, 101])  # a list
    assert manager.num_tokens(7) == 8
    t = manager.block_table(7)
    assert t.num_tokens == 8 and t.num_pages == 2 and len(t) == 2
    assert t.blocks.dtype == np.uint32 and t.blocks.shape == (2,)
    assert t.tier == pagedkv.Tier.GPU
    assert t.slot(5, manager.block_size) == int(t.blocks[1]) * 4 + 1
    s = manager.sequence_stats(7)
    assert (s.seq_id, s.num_tokens, s.num_pages, s.swapped_out) == (7, 8, 2, False)
    assert manager.sequence_ids() == [7]
    st = manager.stats()
    assert st.num_sequences == 1 and st.tokens_stored == 8 and st.slots_allocated == 8
    assert st.groups[0].gpu_in_use_blocks == 2
    manager.check_invariants()
    manager.free(7)
    assert 7 not in manager and manager.num_sequences == 0
    manager.check_invariants()


def test_error_mapping(manager):
    manager.add_sequence(1, [1, 2, 3])
    with pytest.raises(KeyError, match="not known"):
        manager.append_tokens(2, [1])
    with pytest.raises(KeyError):
        manager.free(2)
    with pytest.raises(KeyError):
        manager.num_tokens(2)
    with pytest.raises(RuntimeError):  # AlreadyExists
        manager.add_sequence(1, [1])
    with pytest.raises(ValueError):  # InvalidArgument
        manager.rewind(1, 10)
    with pytest.raises(ValueError):
        manager.fork(1, 1)
    with pytest.raises(pagedkv.OutOfBlocks) as err:
        manager.add_sequence(3, list(range(4 * 33)))  # more pages than the whole pool
    assert isinstance(err.value, MemoryError)
    assert "never fit" in str(err.value)
    with pytest.raises(pagedkv.OutOfBlocks) as err:
        manager.add_sequence(3, list(range(4 * 32)))  # fits an empty pool, not this one
    assert "free" in str(err.value)
    with pytest.raises(MemoryError):
        manager.append_tokens(1, list(range(4 * 40)))
    manager.swap_out(1)
    with pytest.raises(RuntimeError):  # FailedPrecondition: swapped out
        manager.append_tokens(1, [5])
    # Failed calls left the state unchanged.
    assert manager.num_tokens(1) == 3 and manager.num_sequences == 1
    manager.check_invariants()


def test_out_of_blocks_is_a_memory_error():
    assert issubclass(pagedkv.OutOfBlocks, MemoryError)
    assert "free" in pagedkv.OutOfBlocks.__doc__.lower()


def test_fork_copy_on_write_and_cache_ops(manager):
    manager.add_sequence(1, [1, 2, 3, 4, 5, 6])  # 1.5 pages
    manager.fork(1, 2)
    assert manager.sequence_stats(2).num_shared_pages == 2
    assert manager.stats().pages_saved_by_sharing == 2
    manager.append_tokens(2, [7])  # copies the shared partial page
    ops = manager.take_cache_ops()
    assert isinstance(ops, pagedkv.CacheOps) and bool(ops)
    g = ops.groups[0]
    assert g.group == 0 and g.bytes_per_block == manager.group_info(0).bytes_per_block
    assert g.copies.shape == (1, 2) and g.copies.dtype == np.uint32
    assert g.swap_out.shape == (0, 2) and g.swap_in.shape == (0, 2)
    src, dst = g.copies[0]
    assert src == manager.block_table(1).blocks[1]
    assert dst == manager.block_table(2).blocks[1]
    assert ops.copy_bytes() == g.bytes_per_block and ops.total_bytes() == g.bytes_per_block
    assert not manager.take_cache_ops()  # taken once
    assert manager.stats().cow_copies == 1


def test_append_token_batch_is_all_or_nothing(manager):
    for s in (1, 2, 3):
        manager.add_sequence(s, [s] * 4)
    manager.append_token_batch(np.array([1, 2, 3], dtype=np.uint64),
                               np.array([10, 20, 30], dtype=np.int32))
    assert [manager.num_tokens(s) for s in (1, 2, 3)] == [5, 5, 5]
    with pytest.raises(ValueError):  # listed twice
        manager.append_token_batch([1, 1], [5, 6])
    with pytest.raises(KeyError):
        manager.append_token_batch([1, 9], [5, 6])
    with pytest.raises(ValueError):  # sizes differ
        manager.append_token_batch([1, 2], [5])
    assert [manager.num_tokens(s) for s in (1, 2, 3)] == [5, 5, 5]


def test_reorder_beams_and_rewind(manager):
    manager.add_sequence(1, [1, 2, 3, 4, 5])
    manager.fork(1, 2)
    manager.fork(1, 3)
    for s in (1, 2, 3):
        manager.append_tokens(s, [s * 10])
    manager.take_cache_ops()
    before = manager.block_table(3).blocks.copy()
    manager.reorder_beams([1, 2, 3], [2, 2, 0])  # beams 1 and 2 continue old beam 3
    assert np.array_equal(manager.block_table(1).blocks, before)
    assert np.array_equal(manager.block_table(2).blocks, before)
    with pytest.raises(ValueError):
        manager.reorder_beams([1, 2], [0, 5])
    manager.check_invariants()
    manager.rewind(1, 2)
    assert manager.num_tokens(1) == 2 and manager.block_table(1).num_pages == 1
    manager.check_invariants()


def test_swap_out_and_in(manager):
    manager.add_sequence(1, list(range(10)))
    gpu_blocks = manager.block_table(1).blocks.copy()
    manager.swap_out([1])
    assert manager.sequence_stats(1).swapped_out
    assert manager.block_table(1).tier == pagedkv.Tier.HOST
    ops = manager.take_cache_ops()
    so = ops.groups[0].swap_out
    assert so.shape == (3, 2) and np.array_equal(so[:, 0], gpu_blocks)
    assert manager.can_swap_in([1])
    manager.swap_in(1)
    ops = manager.take_cache_ops()
    assert ops.groups[0].swap_in.shape == (3, 2)
    assert manager.block_table(1).tier == pagedkv.Tier.GPU
    with pytest.raises(RuntimeError):  # not swapped out
        manager.swap_in([1])
    assert manager.stats().swap_out_bytes == 3 * manager.group_info(0).bytes_per_block
    no_host = make_manager()
    no_host.add_sequence(1, [1])
    with pytest.raises(RuntimeError, match="host"):
        no_host.swap_out(1)


def test_prefix_caching_hits_and_touch():
    bm = make_manager(block_size=4, gpu_num_blocks=32, enable_prefix_caching=True)
    assert bm.prefix_caching_enabled
    prompt = list(range(100, 113))  # 3 full pages + 1 token
    bm.add_sequence(1, prompt)
    assert bm.can_admit(prompt).num_cached_tokens == 0  # nothing computed yet
    bm.mark_computed(1, len(prompt))
    assert bm.num_computed_tokens(1) == 13
    bm.free(1)
    assert bm.touch_prefix(prompt) == 3
    info = bm.can_admit(prompt)
    assert info.num_cached_tokens == 12
    r = bm.add_sequence(2, prompt, extra_key=0, priority=pagedkv.EvictionPriority.LOW)
    assert r.num_cached_tokens == 12
    assert bm.add_sequence(3, prompt, extra_key=5).num_cached_tokens == 0
    bm.set_eviction_priority(2, pagedkv.EvictionPriority.NORMAL)
    st = bm.stats()
    assert st.prefix_hit_pages == 3 and 0 < st.prefix_hit_rate <= 1
    bm.check_invariants()


def test_cross_attention():
    spec = toy_spec(layers=["full", "cross"])
    bm = make_manager(spec=spec, block_size=4)
    assert bm.num_groups == 2
    with pytest.raises(ValueError, match="encoder_key"):
        bm.add_sequence(1, [1, 2])
    bm.add_sequence(1, [1, 2], encoder_key=0xA0D10)
    cross = bm.locate_layer(1).group
    bm.set_cross_attention(1, 9)
    assert bm.sequence_stats(1).num_encoder_tokens == 9
    layout = bm.build_batch([1], num_new_tokens=9, group=cross)
    assert layout.num_new_tokens == 9 and layout.num_pages == 3
    with pytest.raises(RuntimeError):  # already has them
        bm.set_cross_attention(1, 9)
    plain = make_manager()
    plain.add_sequence(1, [1])
    with pytest.raises(RuntimeError):  # model without cross layers
        plain.set_cross_attention(1, 3)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_build_batch_arrays(block_size):
    bm = make_manager(block_size=block_size, gpu_num_blocks=64)
    lens = {1: 5, 2: 1, 3: 2 * block_size + 4}
    for s, n in lens.items():
        bm.add_sequence(s, list(range(n)))
    layout = bm.build_batch(np.array([1, 2, 3], dtype=np.uint64), num_new_tokens=[5, 1, 2])
    assert layout.batch_size == 3 and layout.block_size == block_size and layout.group == 0
    for name in ("page_indptr", "page_indices", "last_page_len", "first_page_token",
                 "query_indptr"):
        assert getattr(layout, name).dtype == np.int32, name
    assert layout.slot_mapping.dtype == np.int64
    assert layout.page_indptr.shape == (4,) and layout.query_indptr.shape == (4,)
    assert layout.last_page_len.shape == (3,)
    assert list(layout.query_indptr) == [0, 5, 6, 8]
    assert layout.slot_mapping.shape == (8,)
    for b, s in enumerate((1, 2, 3)):
        pages = layout.page_indices[layout.page_indptr[b]:layout.page_indptr[b + 1]]
        assert np.array_equal(pages, bm.block_table(s).blocks.astype(np.int32))
        n = lens[s]
        assert layout.last_page_len[b] == (n - 1) % block_size + 1
        t = bm.block_table(s)
        q0, q1 = layout.query_indptr[b], layout.query_indptr[b + 1]
        want = [t.slot(i, block_size) for i in range(n - (q1 - q0), n)]
        assert list(layout.slot_mapping[q0:q1]) == want
    # Chunked prefill: a context shorter than the table.
    chunk = bm.build_batch([3], num_new_tokens=2, num_context_tokens=[4])
    assert chunk.num_new_tokens == 2
    with pytest.raises(ValueError):
        bm.build_batch([1], num_new_tokens=[1, 2])
    with pytest.raises(KeyError):
        bm.build_batch([42])
    with pytest.raises(ValueError):
        bm.build_batch([1], group=3)


def test_arrays_outlive_their_producers():
    bm = make_manager(block_size=4, gpu_num_blocks=16)
    bm.add_sequence(1, list(range(9)))
    bm.fork(1, 2)
    bm.append_tokens(2, [1])
    layout = bm.build_batch([1, 2])
    indptr, slots = layout.page_indptr, layout.slot_mapping
    copies = bm.take_cache_ops().groups[0].copies  # the CacheOps itself is dropped here
    table_blocks = bm.block_table(1).blocks
    del layout
    gc.collect()
    # New batches do not touch earlier layouts (each build_batch returns a new owner).
    for _ in range(5):
        bm.build_batch([1, 2], num_new_tokens=1)
    assert list(indptr) == [0, 3, 6]
    assert slots.shape == (2,) and copies.shape == (1, 2)
    assert indptr.base is not None and copies.base is not None
    bm.free(1)
    bm.free(2)
    assert table_blocks.shape == (3,)  # a copy, unaffected by the free


def test_kv_cache_view_keeps_manager_alive():
    bm = make_manager(block_size=4, gpu_num_blocks=8, host_num_blocks=4)
    cache = bm.kv_cache(0)
    host = bm.kv_cache(0, pagedkv.Tier.HOST)
    assert cache.shape == (8, 2, 2, 2, 4, 8) and cache.dtype == np.float32
    assert host.shape == (4, 2, 2, 2, 4, 8)
    assert cache.flags.c_contiguous and cache.flags.writeable
    assert cache.ctypes.data == bm.pool_ptr(0)
    del bm
    gc.collect()
    cache[...] = 1.5  # the pool is still alive: the view holds the manager
    assert float(cache.sum()) == 1.5 * cache.size


def test_kv_cache_dtypes_and_virtual_pool():
    bm = make_manager(spec=toy_spec(kv_dtype="fp16"))
    assert bm.kv_cache().dtype == np.float16
    bm16 = make_manager(spec=toy_spec(kv_dtype="bf16"))
    assert bm16.kv_cache().dtype == np.uint16
    virt = make_manager(gpu_tier="virtual")
    with pytest.raises(RuntimeError, match="virtual"):
        virt.kv_cache()
    assert virt.pool_ptr() == 0
    with pytest.raises(ValueError):
        virt.pool_ptr(5)


def test_help_is_readable():
    doc = pagedkv.BlockManager.__doc__
    assert "Maps sequences to KV pages" in doc
    assert "append_token_batch" in pagedkv.BlockManager.append_token_batch.__doc__
    text = []
    import pydoc
    text = pydoc.render_doc(pagedkv.BlockManager, renderer=pydoc.plaintext)
    assert "add_sequence" in text and "build_batch" in text


def test_group_out_of_range_is_value_error(manager):
    with pytest.raises(ValueError, match="out of range"):
        manager.group_info(1)
    with pytest.raises(ValueError):
        manager.group_info(-1)
    manager.add_sequence(1, [1])
    with pytest.raises(ValueError):
        manager.block_table(1, group=2)


def test_reprs(manager):
    manager.add_sequence(1, [1, 2, 3, 4, 5])
    assert repr(manager.build_batch([1])) == (
        "BatchLayout(group=0, block_size=4, batch_size=1, num_pages=2, num_new_tokens=1)")
    assert repr(manager.take_cache_ops()) == "CacheOps(groups=1, swap_out=0, swap_in=0, copies=0)"
    assert repr(manager.can_admit([9, 9])).startswith("AdmitInfo(can_admit=True")


def test_regression_preempted_chunked_prefill_offers_only_computed_pages():
    # add_sequence(41 tokens); the engine computes 8 (one chunked-prefill step), then the request
    # is preempted (rewind, free): only the 8 computed tokens may be offered again.
    bm = make_manager(spec=toy_spec(num_layers=1), block_size=4, gpu_num_blocks=64,
                      enable_prefix_caching=True)
    prompt = list(range(1000, 1041))
    bm.add_sequence(1, prompt)
    bm.mark_computed(1, 8)
    bm.rewind(1, 8)
    bm.free(1)
    assert bm.can_admit(prompt).num_cached_tokens == 8
    bm.check_invariants()


def test_regression_same_step_admission_hits_no_uncomputed_page():
    bm = make_manager(spec=toy_spec(num_layers=1), block_size=4, gpu_num_blocks=64,
                      enable_prefix_caching=True)
    prompt = list(range(2000, 2017))
    bm.add_sequence(1, prompt)
    assert bm.add_sequence(2, prompt).num_cached_tokens == 0
    bm.mark_computed_batch(np.array([1, 2], dtype=np.uint64), np.array([17, 17], dtype=np.int64))
    assert bm.add_sequence(3, prompt).num_cached_tokens == 16
    assert bm.sequence_stats(3).num_computed_tokens == 16
    with pytest.raises(ValueError, match="Rewind"):
        bm.mark_computed(3, 4)  # below the computed count
    with pytest.raises(KeyError):
        bm.mark_computed(99, 1)
    bm.check_invariants()


def test_remote_tier_shares_pages_between_managers():
    # Two managers (two engines) on one in-process store: the second loads the pages the first
    # computed and evicted. (tests/remote runs the same on real Redis servers and clusters.)
    def manager():
        cfg = pagedkv.CacheConfig(block_size_tokens=4, gpu_num_blocks=8, host_num_blocks=8,
                                  enable_prefix_caching=True, gpu_tier=pagedkv.Tier.HOST)
        cfg.remote.url = "memory://python-remote-test"
        cfg.remote.admit_hits = 0
        return pagedkv.BlockManager(toy_spec(num_layers=1), cfg)

    a, b = manager(), manager()
    assert a.has_remote_tier and a.config.remote.url == "memory://python-remote-test"
    prompt = list(range(500, 517))  # 4 full pages + 1 token
    a.add_sequence(1, prompt)
    a.take_cache_ops()
    a.mark_computed(1, len(prompt))
    a.free(1)
    for r in range(6):  # other prompts push it out of GPU and host
        a.add_sequence(10 + r, list(range(1000 * (r + 2), 1000 * (r + 2) + 17)))
        pagedkv.execute_cache_ops(a, a.take_cache_ops())
        a.mark_computed(10 + r, 17)
        a.free(10 + r)
        pagedkv.execute_cache_ops(a, a.take_cache_ops())
    assert a.flush_remote_writes(10.0)
    assert a.remote_stats().writes_done >= 4
    info = b.add_sequence(7, prompt)
    assert info.num_remote_hit_pages == 4 and info.num_cached_tokens == 16
    assert b.remote_stats().hit_pages == 4
    assert b.stats().prefix_remote_hit_pages == 4
    bad = pagedkv.CacheConfig(block_size_tokens=4, gpu_num_blocks=8)
    bad.remote.url = "memory://x"
    with pytest.raises(ValueError, match="host"):
        pagedkv.BlockManager(toy_spec(num_layers=1), bad)
    bad.remote.url = "nope://"
    with pytest.raises(ValueError, match="remote.url"):
        bad.validate()
