"""CUDA IPC pools for pagedkv.client: a server whose GPU pools are CUDA device memory hands each one
out as a cudaIpcMemHandle_t (POOL_KIND_CUDA_IPC) in the pool socket's handle message; this module
opens it in the engine process through the CUDA runtime (ctypes, no build step) and exposes it
with __cuda_array_interface__, so PyTorch, CuPy or Numba view the very pages the page tables name:

    pools = session.map_pools()
    gpu = pools.get(0, "gpu")                  # a DevicePool when the server's pool is on a GPU
    kv = torch.as_tensor(gpu, device="cuda")   # [blocks, layers, 2, kv_heads, block_size, head_dim]

The engine must run on the server's machine, with access to the same GPU.
"""

import ctypes
import ctypes.util

import grpc
import numpy as np

_CUDA_IPC_HANDLE_BYTES = 64
_LAZY_ENABLE_PEER_ACCESS = 1
_CUDART = None


class _IpcHandle(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_char * _CUDA_IPC_HANDLE_BYTES)]


def _error(message):
    from .client import ServiceError  # the client imports this module: import late
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, message)


def cudart():
    """The CUDA runtime library (loaded once), or ServiceError when there is none."""
    global _CUDART
    if _CUDART is not None:
        return _CUDART
    names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    found = ctypes.util.find_library("cudart")
    if found:
        names.insert(0, found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.cudaIpcOpenMemHandle.argtypes = [ctypes.POINTER(ctypes.c_void_p), _IpcHandle,
                                             ctypes.c_uint]
        lib.cudaIpcCloseMemHandle.argtypes = [ctypes.c_void_p]
        lib.cudaSetDevice.argtypes = [ctypes.c_int]
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        _CUDART = lib
        return lib
    raise _error("this server's GPU pools are CUDA device memory (CUDA IPC) but no CUDA runtime "
                 "(libcudart) can be loaded here; run the engine on the server's machine with "
                 "the CUDA toolkit or PyTorch's CUDA build installed")


def _check(lib, err, what):
    if err != 0:
        raise _error(f"{what} failed: {lib.cudaGetErrorString(err).decode()} (error {err}); the "
                     "engine must run on the server's machine with access to its GPU")


class DevicePool:
    """A server GPU pool opened over CUDA IPC: [num_blocks, layers_in_group, 2 (K, V),
    num_kv_heads, block_size, head_dim] of `dtype` in device memory (bf16 as uint16 bits).

    `ptr` is the device address of block 0; `__cuda_array_interface__` describes the whole pool.
    close() unmaps it (also on garbage collection).
    """

    def __init__(self, handle, dtype):
        if len(handle.cuda_ipc_handle) != _CUDA_IPC_HANDLE_BYTES:
            raise _error(f"pool group {handle.group} {handle.tier}: a CUDA IPC handle has "
                         f"{_CUDA_IPC_HANDLE_BYTES} bytes, this one {len(handle.cuda_ipc_handle)}")
        lay = handle.layout
        self.handle = handle
        self.device = handle.cuda_device
        self.dtype = np.dtype(dtype)
        self.shape = (handle.num_blocks, lay.num_layers, 2, lay.num_kv_heads, lay.block_size,
                      lay.head_dim)
        lib = cudart()
        _check(lib, lib.cudaSetDevice(self.device), f"cudaSetDevice({self.device})")
        raw = _IpcHandle()
        ctypes.memmove(raw.reserved, handle.cuda_ipc_handle, _CUDA_IPC_HANDLE_BYTES)
        base = ctypes.c_void_p()
        _check(lib, lib.cudaIpcOpenMemHandle(ctypes.byref(base), raw, _LAZY_ENABLE_PEER_ACCESS),
               "cudaIpcOpenMemHandle")
        self._base = base.value
        self.ptr = self._base + handle.offset_bytes

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "version": 3, "strides": None}

    def block_address(self, block):
        """Device address of one block (bytes_per_block bytes)."""
        if not 0 <= block < self.handle.num_blocks:
            raise IndexError(f"block {block} outside [0, {self.handle.num_blocks})")
        return self.ptr + block * self.handle.bytes_per_block

    def close(self):
        if self._base:
            lib = cudart()
            lib.cudaSetDevice(self.device)
            lib.cudaIpcCloseMemHandle(ctypes.c_void_p(self._base))
            self._base = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass
