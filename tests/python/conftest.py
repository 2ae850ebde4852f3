"""Shared fixtures and the dense NumPy reference of the pagedkv Python tests.

Run from the build tree: PYTHONPATH=<build>/python /usr/bin/python3 -m pytest tests/python
(CTest's python_pytest does this).
"""

import numpy as np
import pytest

import pagedkv

BLOCK_SIZES = [1, 3, 16, 17]


def toy_spec(num_layers=2, num_q_heads=4, num_kv_heads=2, head_dim=8, kv_dtype="fp32", **kw):
    return pagedkv.ModelSpec(name="toy", num_layers=num_layers, num_q_heads=num_q_heads,
                             num_kv_heads=num_kv_heads, head_dim=head_dim, kv_dtype=kv_dtype, **kw)


def make_manager(block_size=4, gpu_num_blocks=32, host_num_blocks=0, spec=None, **kw):
    cfg = pagedkv.CacheConfig(block_size_tokens=block_size, gpu_num_blocks=gpu_num_blocks,
                              host_num_blocks=host_num_blocks, **kw)
    return pagedkv.BlockManager(spec or toy_spec(), cfg)


def token_kv(tokens, layer, num_kv_heads, head_dim):
    """Deterministic K and V rows [T, H, D] derived from (token id, position, layer)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    pos = np.arange(len(tokens), dtype=np.float64)
    h = np.arange(num_kv_heads, dtype=np.float64)[None, :, None]
    d = np.arange(head_dim, dtype=np.float64)[None, None, :]
    base = (tokens * 0.37 + pos * 0.011 + layer * 0.5)[:, None, None]
    k = np.sin(base + 0.3 * h + 0.07 * d)
    v = np.cos(base * 1.3 + 0.2 * h - 0.05 * d)
    return k.astype(np.float32), v.astype(np.float32)


def dense_attention(q, k, v, causal_last=False, scale=None):
    """q [Tq, Hq, D], k/v [L, Hkv, D]. Decode: every query sees all L. causal_last: query i of
    Tq is token L - Tq + i and sees tokens <= itself."""
    tq, hq, d = q.shape
    length, hkv, _ = k.shape
    group = hq // hkv
    scale = scale or 1.0 / np.sqrt(d)
    out = np.zeros_like(q, dtype=np.float64)
    for i in range(tq):
        visible = length - tq + i + 1 if causal_last else length
        for head in range(hq):
            kh = head // group
            s = (k[:visible, kh, :].astype(np.float64) @ q[i, head].astype(np.float64)) * scale
            p = np.exp(s - s.max())
            p /= p.sum()
            out[i, head] = p @ v[:visible, kh, :].astype(np.float64)
    return out


def gather_kv(cache, layer_in_group, blocks, num_tokens, block_size):
    """K, V [num_tokens, H, D] of one sequence read back through its block ids."""
    ks, vs = [], []
    for t in range(num_tokens):
        b = blocks[t // block_size]
        ks.append(cache[b, layer_in_group, 0, :, t % block_size, :])
        vs.append(cache[b, layer_in_group, 1, :, t % block_size, :])
    return np.stack(ks), np.stack(vs)


@pytest.fixture
def manager():
    return make_manager(block_size=4, gpu_num_blocks=32, host_num_blocks=16)
