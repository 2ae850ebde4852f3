"""The CUDA kernels through pagedkv.raw on device memory, as a tensor library's user would call
them (addresses as ints). Device memory is managed here with ctypes and the CUDA runtime, so no
tensor library is needed. Skipped without a CUDA build and device."""

import ctypes
import ctypes.util

import numpy as np
import pytest

import pagedkv
from conftest import dense_attention, make_manager, token_kv

pytestmark = pytest.mark.skipif(
    "attention" not in pagedkv.bound_areas or not pagedkv.cuda_device_available(),
    reason="needs pagedkv built with CUDA and a usable device")

H, HQ, D = 2, 4, 8
_H2D, _D2H = 1, 2


class Device:
    def __init__(self):
        name = ctypes.util.find_library("cudart") or "libcudart.so"
        self.rt = ctypes.CDLL(name)
        self.ptrs = []

    def check(self, err):
        assert err == 0, f"CUDA runtime error {err}"

    def upload(self, array):
        array = np.ascontiguousarray(array)
        ptr = ctypes.c_void_p()
        self.check(self.rt.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(array.nbytes, 1))))
        self.ptrs.append(ptr)
        self.check(self.rt.cudaMemcpy(ptr, ctypes.c_void_p(array.ctypes.data),
                                      ctypes.c_size_t(array.nbytes), _H2D))
        return ptr.value

    def download(self, ptr, like):
        out = np.empty_like(like)
        self.check(self.rt.cudaDeviceSynchronize())
        self.check(self.rt.cudaMemcpy(ctypes.c_void_p(out.ctypes.data), ctypes.c_void_p(ptr),
                                      ctypes.c_size_t(out.nbytes), _D2H))
        return out

    def free(self):
        for p in self.ptrs:
            self.rt.cudaFree(p)


def test_write_kv_and_decode_on_device():
    from conftest import toy_spec
    bm = make_manager(spec=toy_spec(kv_dtype="fp16"), block_size=4, gpu_num_blocks=16)
    assert bm.pool_is_device_memory(0)
    dev = Device()
    try:
        toks = list(range(11))
        bm.add_sequence(1, toks)
        layout = bm.build_batch([1], num_new_tokens=len(toks))
        k, v = token_kv(toks, 0, H, D)
        view = pagedkv.raw.PagedKVView(pool=bm.pool_ptr(0), dtype="fp16", num_blocks=16,
                                       layers_in_group=2, layer_in_group=0, num_kv_heads=H,
                                       head_dim=D, block_size=4)
        view.num_slots = len(toks)
        view.slot_mapping = dev.upload(layout.slot_mapping)
        pagedkv.raw.write_kv(view, dev.upload(k.astype(np.float16)),
                             dev.upload(v.astype(np.float16)), backend="cuda")
        dec = bm.build_batch([1])
        view.batch_size = 1
        view.page_indptr = dev.upload(dec.page_indptr)
        view.page_indices = dev.upload(dec.page_indices)
        view.last_page_len = dev.upload(dec.last_page_len)
        q = np.random.default_rng(0).standard_normal((1, HQ, D)).astype(np.float16)
        out_ptr = dev.upload(np.zeros_like(q))
        pagedkv.raw.paged_attention_decode(view, dev.upload(q), out_ptr, dtype="fp16",
                                           num_q_heads=HQ, num_tokens=1, backend="cuda",
                                           max_kv_len_hint=len(toks))
        out = dev.download(out_ptr, q).astype(np.float32)
        want = dense_attention(q.astype(np.float32), k.astype(np.float16).astype(np.float32),
                               v.astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(out, want, atol=5e-3)
    finally:
        dev.free()
