"""A small reader and writer of the safetensors checkpoint format (no dependency but NumPy and
PyTorch; Debian has no python3-safetensors).

The format, as this module reads and writes it:

    [8 bytes]  N, the header length, unsigned 64-bit little-endian
    [N bytes]  a UTF-8 JSON object: tensor name -> {"dtype": "F32", "shape": [rows, cols],
               "data_offsets": [begin, end]}, and optionally "__metadata__": {str: str};
               the writer pads it with spaces to a multiple of 8 bytes
    [rest]     the byte buffer; a tensor's bytes are buffer[begin:end] (offsets relative to the
               start of the buffer), row-major, little-endian

    tensors = load_safetensors("model.safetensors")            # name -> torch.Tensor (CPU)
    save_safetensors({"w": torch.ones(2, 3)}, "out.safetensors", metadata={"format": "pt"})

Every malformed input raises SafetensorsError (a ValueError) naming the file, the tensor and
what is wrong: a header longer than the file, JSON that is not an object, an unknown dtype,
offsets outside the buffer or not matching the shape, overlapping tensors.
"""

import json
import math
import os
import struct

import numpy as np
import torch

# safetensors dtype -> (NumPy dtype used to read the bytes, torch dtype, bytes per element).
# BF16 has no NumPy dtype: its bits are read as int16 and reinterpreted by torch.
_DTYPES = {
    "F64": (np.float64, torch.float64),
    "F32": (np.float32, torch.float32),
    "F16": (np.float16, torch.float16),
    "BF16": (np.int16, torch.bfloat16),
    "I64": (np.int64, torch.int64),
    "I32": (np.int32, torch.int32),
    "I16": (np.int16, torch.int16),
    "I8": (np.int8, torch.int8),
    "U8": (np.uint8, torch.uint8),
    "BOOL": (np.bool_, torch.bool),
}
_TORCH_TO_NAME = {t: name for name, (_, t) in _DTYPES.items()}
# A header larger than this is certainly not a checkpoint (the format's own readers cap it too).
_MAX_HEADER_BYTES = 100 << 20


class SafetensorsError(ValueError):
    """A file that is not a valid safetensors checkpoint, or a tensor that cannot be saved."""


def read_safetensors_header(path):
    """(header dict without __metadata__, metadata dict, byte offset of the buffer)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors file "
                                   f"(8-byte header length missing)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > _MAX_HEADER_BYTES:
            raise SafetensorsError(f"{path}: header length {n} exceeds the file ({size} bytes); "
                                   f"the file is truncated or not safetensors")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header must be a JSON object, got "
                               f"{type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise SafetensorsError(f"{path}: __metadata__ must be an object of strings")
    buffer_len = size - 8 - n
    spans = []
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise SafetensorsError(f"{where}: needs dtype, shape and data_offsets")
        if entry["dtype"] not in _DTYPES:
            raise SafetensorsError(f"{where}: dtype {entry['dtype']!r} is not supported "
                                   f"(supported: {', '.join(_DTYPES)})")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"{where}: shape must be a list of ints >= 0, got {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and
                all(isinstance(o, int) for o in offsets)):
            raise SafetensorsError(f"{where}: data_offsets must be [begin, end], got {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= buffer_len:
            raise SafetensorsError(f"{where}: data_offsets [{begin}, {end}] outside the "
                                   f"{buffer_len}-byte buffer")
        itemsize = np.dtype(_DTYPES[entry["dtype"]][0]).itemsize
        want = math.prod(shape) * itemsize
        if end - begin != want:
            raise SafetensorsError(f"{where}: {end - begin} bytes for shape {shape} of "
                                   f"{entry['dtype']} ({want} bytes expected)")
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors {n0!r} and {n1!r} overlap in the buffer")
    return header, metadata, 8 + n


def load_safetensors(path, names=None):
    """Tensors of a safetensors file as {name: torch.Tensor} (CPU, own memory: the file is not
    kept open). `names`: load only these (KeyError naming the missing ones)."""
    header, _, base = read_safetensors_header(path)
    if names is not None:
        missing = sorted(set(names) - set(header))
        if missing:
            raise KeyError(f"{os.fspath(path)}: no tensor named {', '.join(missing)}")
        header = {k: header[k] for k in names}
    out = {}
    with open(os.fspath(path), "rb") as f:
        for name, entry in header.items():
            np_dtype, torch_dtype = _DTYPES[entry["dtype"]]
            begin, end = entry["data_offsets"]
            f.seek(base + begin)
            data = f.read(end - begin)
            array = np.frombuffer(data, dtype=np.dtype(np_dtype).newbyteorder("<"))
            array = array.astype(np_dtype, copy=True).reshape(entry["shape"])
            tensor = torch.from_numpy(array)
            if torch_dtype == torch.bfloat16:
                tensor = tensor.view(torch.bfloat16)
            out[name] = tensor
    return out


def save_safetensors(tensors, path, metadata=None):
    """Writes {name: tensor} (torch tensors or NumPy arrays) to `path` in safetensors format.
    SafetensorsError for a dtype the format lacks or a non-string name or metadata value."""
    entries, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"tensor name {name!r} must be a string other than "
                                   f"__metadata__")
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(t))
        if not isinstance(t, torch.Tensor):
            raise SafetensorsError(f"tensor {name!r}: expected a torch.Tensor or NumPy array, "
                                   f"got {type(t).__name__}")
        if t.dtype not in _TORCH_TO_NAME:
            raise SafetensorsError(f"tensor {name!r}: dtype {t.dtype} cannot be saved "
                                   f"(supported: {', '.join(_DTYPES)})")
        t = t.detach().to("cpu").contiguous()
        bits = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        blob = bits.numpy().astype(bits.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        entries[name] = {"dtype": _TORCH_TO_NAME[t.dtype], "shape": list(t.shape),
                         "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("metadata must map strings to strings")
        entries = {"__metadata__": dict(metadata), **entries}
    header = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 8)
    with open(os.fspath(path), "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for blob in blobs:
            f.write(blob)
