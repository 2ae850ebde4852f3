"""CPU kernels on NumPy arrays and the raw-address interface, against dense NumPy."""

import numpy as np
import pytest

import pagedkv
from conftest import BLOCK_SIZES, dense_attention, gather_kv, make_manager, token_kv, toy_spec

H, HQ, D = 2, 4, 8


def fill(bm, cache, seq, tokens, num_new):
    """Writes token-derived K/V of the last num_new tokens of `seq` through build_batch."""
    layout = bm.build_batch([seq], num_new_tokens=num_new)
    for layer in range(cache.shape[1]):
        k, v = token_kv(tokens, layer, H, D)
        pagedkv.write_kv(cache, layer, layout.slot_mapping, k[-num_new:], v[-num_new:])


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_write_then_decode_and_extend_match_dense(block_size):
    rng = np.random.default_rng(block_size)
    bm = make_manager(block_size=block_size, gpu_num_blocks=128)
    cache = bm.kv_cache()
    seqs = {s: list(rng.integers(0, 1000, size=int(rng.integers(1, 40)))) for s in (1, 2, 3)}
    for s, toks in seqs.items():
        bm.add_sequence(s, toks)
        fill(bm, cache, s, toks, len(toks))
    ids = list(seqs)
    layout = bm.build_batch(ids, num_new_tokens=1)
    q = rng.standard_normal((3, HQ, D)).astype(np.float32)
    for layer in range(2):
        out = pagedkv.attention_decode(cache, layer, q, layout)
        assert out.shape == q.shape and out.dtype == np.float32
        for b, s in enumerate(ids):
            k, v = token_kv(seqs[s], layer, H, D)
            np.testing.assert_allclose(out[b], dense_attention(q[b:b + 1], k, v)[0], atol=2e-5)
            kk, vv = gather_kv(cache, layer, bm.block_table(s).blocks, len(seqs[s]), block_size)
            np.testing.assert_array_equal(kk, k)
            np.testing.assert_array_equal(vv, v)
    # Extend: the last min(3, len) tokens of each sequence as queries, causal.
    nq = [min(3, len(seqs[s])) for s in ids]
    layout = bm.build_batch(ids, num_new_tokens=nq)
    q = rng.standard_normal((sum(nq), HQ, D)).astype(np.float32)
    out = pagedkv.attention_extend(cache, 1, q, layout)
    for b, s in enumerate(ids):
        k, v = token_kv(seqs[s], 1, H, D)
        q0, q1 = layout.query_indptr[b], layout.query_indptr[b + 1]
        want = dense_attention(q[q0:q1], k, v, causal_last=True)
        np.testing.assert_allclose(out[q0:q1], want, atol=2e-5)


def test_fp16_cache_and_out_argument():
    bm = make_manager(spec=toy_spec(kv_dtype="fp16"), block_size=4)
    cache = bm.kv_cache()
    toks = list(range(10))
    bm.add_sequence(1, toks)
    fill(bm, cache, 1, toks, 10)  # float32 rows are converted to fp16
    layout = bm.build_batch([1])
    q = np.random.default_rng(0).standard_normal((1, HQ, D)).astype(np.float32)
    out = np.empty_like(q)
    res = pagedkv.attention_decode(cache, 0, q, layout, out=out, softmax_scale=0.25)
    assert res is out or np.shares_memory(res, out)
    k, v = token_kv(toks, 0, H, D)
    np.testing.assert_allclose(out[0], dense_attention(q, k, v, scale=0.25)[0], atol=3e-3)
    with pytest.raises(ValueError):
        pagedkv.attention_decode(cache, 0, q, layout, out=np.empty((2, HQ, D), np.float32))


def test_kernel_argument_errors():
    bm = make_manager(block_size=4, gpu_num_blocks=8)
    cache = bm.kv_cache()
    cache[...] = 0  # pool memory starts uninitialized
    k = np.zeros((1, H, D), np.float32)
    with pytest.raises(ValueError, match="out of range|slot"):
        pagedkv.write_kv(cache, 0, np.array([8 * 4], np.int64), k, k)
    with pytest.raises(ValueError, match="must be"):
        pagedkv.write_kv(cache, 0, np.array([0], np.int64), np.zeros((1, 3, D), np.float32), k)
    with pytest.raises(ValueError, match="layer_in_group"):
        pagedkv.write_kv(cache, 5, np.array([0], np.int64), k, k)
    with pytest.raises(ValueError, match="kv_cache must be"):
        pagedkv.write_kv(np.zeros((4, 4), np.float32), 0, np.array([0], np.int64), k, k)
    with pytest.raises(TypeError):
        pagedkv.write_kv(cache.astype(np.float64), 0, np.array([0], np.int64), k, k)
    # Negative slots are skipped.
    pagedkv.write_kv(cache, 0, np.array([-1], np.int64), k + 1, k + 1)
    assert not cache.any()


def test_copy_and_swap_blocks():
    bm = make_manager(block_size=4, gpu_num_blocks=8, host_num_blocks=4)
    gpu, host = bm.kv_cache(0), bm.kv_cache(0, "host")
    gpu[...] = np.arange(gpu.size, dtype=np.float32).reshape(gpu.shape)
    pagedkv.copy_blocks(gpu, np.array([[1, 5], [2, 6]]))
    np.testing.assert_array_equal(gpu[5], gpu[1])
    np.testing.assert_array_equal(gpu[6], gpu[2])
    pagedkv.swap_blocks(gpu, host, [[3, 0]])
    np.testing.assert_array_equal(host[0], gpu[3])
    pagedkv.swap_blocks(host, gpu, np.array([[0, 7]], np.uint32))
    np.testing.assert_array_equal(gpu[7], gpu[3])
    with pytest.raises(ValueError):
        pagedkv.copy_blocks(gpu, [[1, 99]])
    with pytest.raises(ValueError):
        pagedkv.copy_blocks(gpu, [[1, 2, 3]])
    pagedkv.copy_blocks(gpu, np.zeros((0, 2), np.uint32))  # nothing to do


def test_raw_address_interface_on_host_memory():
    """pagedkv.raw takes addresses (ints), as a tensor's data_ptr() would give."""
    bm = make_manager(block_size=4, gpu_num_blocks=16)
    cache = bm.kv_cache()
    toks = list(range(7))
    bm.add_sequence(1, toks)
    layout = bm.build_batch([1], num_new_tokens=7)
    k, v = token_kv(toks, 1, H, D)
    view = pagedkv.raw.PagedKVView(pool=bm.pool_ptr(0), dtype=pagedkv.DType.FP32,
                                   num_blocks=16, layers_in_group=2, layer_in_group=1,
                                   num_kv_heads=H, head_dim=D, block_size=4)
    slots = np.ascontiguousarray(layout.slot_mapping)
    view.num_slots = len(slots)
    view.slot_mapping = slots.ctypes.data
    pagedkv.raw.write_kv(view, k.ctypes.data, v.ctypes.data, backend="cpu")
    kk, vv = gather_kv(cache, 1, bm.block_table(1).blocks, 7, 4)
    np.testing.assert_array_equal(kk, k)
    dec = bm.build_batch([1])
    indptr, indices, last = (np.ascontiguousarray(a) for a in
                             (dec.page_indptr, dec.page_indices, dec.last_page_len))
    view.batch_size = 1
    view.page_indptr, view.page_indices, view.last_page_len = (
        indptr.ctypes.data, indices.ctypes.data, last.ctypes.data)
    q = np.random.default_rng(1).standard_normal((1, HQ, D)).astype(np.float32)
    out = np.zeros_like(q)
    pagedkv.raw.paged_attention_decode(view, q.ctypes.data, out.ctypes.data, dtype="fp32",
                                       num_q_heads=HQ, num_tokens=1, backend="cpu")
    np.testing.assert_allclose(out, dense_attention(q, k, v), atol=2e-5)
    pagedkv.raw.copy_blocks(bm.pool_ptr(0), bm.group_info(0).bytes_per_block, 16, [[0, 9]],
                            backend="cpu")
    np.testing.assert_array_equal(cache[9], cache[0])
    assert isinstance(pagedkv.attention_built_with_cuda(), bool)
    if not pagedkv.cuda_device_available():
        with pytest.raises((RuntimeError, ValueError)):
            pagedkv.raw.write_kv(view, k.ctypes.data, v.ctypes.data, backend="cuda")


def test_worker_pool():
    pool = pagedkv.CpuWorkerPool(2)
    assert pool.num_threads == 2
    bm = make_manager(block_size=4)
    cache = bm.kv_cache()
    bm.add_sequence(1, [1, 2, 3])
    fill(bm, cache, 1, [1, 2, 3], 3)
    q = np.ones((1, HQ, D), np.float32)
    a = pagedkv.attention_decode(cache, 0, q, bm.build_batch([1]), cpu_pool=pool)
    b = pagedkv.attention_decode(cache, 0, q, bm.build_batch([1]))
    np.testing.assert_array_equal(a, b)


def test_page_table_lengths_are_checked():
    bm = make_manager(block_size=4, gpu_num_blocks=8)
    cache = bm.kv_cache()
    q = np.zeros((1, HQ, D), np.float32)
    with pytest.raises(ValueError, match="page_indices has 1 entries"):
        pagedkv.paged_attention_decode(cache, 0, q, [0, 3], [0], [2])
    with pytest.raises(ValueError, match="last_page_len"):
        pagedkv.paged_attention_decode(cache, 0, q, [0, 1], [0], [2, 2])
    with pytest.raises(ValueError):  # block id out of the pool
        pagedkv.paged_attention_decode(cache, 0, q, [0, 1], [8], [2])
