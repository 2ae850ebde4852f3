"""The engine's safetensors reader/writer and checkpoint loading: files written by hand from the
format's definition, round trips of every dtype, malformed files, and a model saved and loaded
back producing the same logits."""

import json
import struct

import numpy as np
import pytest

from engine_util import TOY, toy_model, torch

from pagedkv.engine import (DenseReference, LlamaModel, ModelConfig, SafetensorsError,
                            load_safetensors, save_safetensors)
from pagedkv.engine.safetensors import read_safetensors_header


def write_raw(path, header, buffer):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + buffer)


def test_reads_a_file_written_by_hand(tmp_path):
    path = tmp_path / "hand.safetensors"
    buffer = struct.pack("<3f", 1.5, -2.0, 0.25) + struct.pack("<2q", 7, -9) + \
        struct.pack("<2H", 0x3F80, 0xC000)  # bf16 1.0 and -2.0
    write_raw(path, {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
        "b": {"dtype": "I64", "shape": [2, 1], "data_offsets": [12, 28]},
        "c": {"dtype": "BF16", "shape": [2], "data_offsets": [28, 32]},
    }, buffer)
    t = load_safetensors(path)
    assert t["a"].tolist() == [1.5, -2.0, 0.25] and t["a"].dtype == torch.float32
    assert t["b"].tolist() == [[7], [-9]] and t["b"].dtype == torch.int64
    assert t["c"].dtype == torch.bfloat16 and t["c"].float().tolist() == [1.0, -2.0]
    _, metadata, base = read_safetensors_header(path)
    assert metadata == {"format": "pt"} and base == path.stat().st_size - len(buffer)
    assert set(load_safetensors(path, names=["b"])) == {"b"}
    with pytest.raises(KeyError, match="zzz"):
        load_safetensors(path, names=["zzz"])


def test_round_trip_and_layout(tmp_path):
    path = tmp_path / "rt.safetensors"
    tensors = {
        "f32": torch.randn(3, 4), "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "scalar": torch.tensor(3.0), "empty": torch.zeros(0, 4),
        "np": np.arange(3, dtype=np.int64),
    }
    save_safetensors(tensors, path, metadata={"note": "test"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0  # the writer pads the header
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == {"note": "test"}
    end = 0
    for name in tensors:  # contiguous, in order, no holes
        begin, stop = header[name]["data_offsets"]
        assert begin == end
        end = stop
    assert end == len(raw) - 8 - n
    back = load_safetensors(path)
    for name, t in tensors.items():
        want = torch.from_numpy(t) if isinstance(t, np.ndarray) else t
        assert back[name].dtype == want.dtype and torch.equal(back[name], want), name


@pytest.mark.parametrize("case,message", [
    ("short", "too short"),
    ("header_too_long", "exceeds the file"),
    ("not_json", "not UTF-8 JSON"),
    ("not_object", "JSON object"),
    ("bad_dtype", "not supported"),
    ("size_mismatch", "expected"),
    ("outside", "outside"),
    ("overlap", "overlap"),
])
def test_malformed_files(tmp_path, case, message):
    path = tmp_path / f"{case}.safetensors"
    ok = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    if case == "short":
        path.write_bytes(b"\x01\x02")
    elif case == "header_too_long":
        path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    elif case == "not_json":
        path.write_bytes(struct.pack("<Q", 3) + b"{x:")
    elif case == "not_object":
        path.write_bytes(struct.pack("<Q", 2) + b"[]")
    elif case == "bad_dtype":
        write_raw(path, {"a": dict(ok, dtype="Q7")}, bytes(8))
    elif case == "size_mismatch":
        write_raw(path, {"a": dict(ok, shape=[3])}, bytes(8))
    elif case == "outside":
        write_raw(path, {"a": dict(ok, data_offsets=[0, 16])}, bytes(8))
    elif case == "overlap":
        write_raw(path, {"a": ok, "b": dict(ok, data_offsets=[4, 12])}, bytes(12))
    with pytest.raises(SafetensorsError, match=message):
        load_safetensors(path)


def test_save_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(SafetensorsError, match="complex"):
        save_safetensors({"c": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "c.st")
    with pytest.raises(SafetensorsError, match="metadata"):
        save_safetensors({"a": torch.zeros(1)}, tmp_path / "m.st", metadata={"k": 1})


def test_model_checkpoint_round_trip(tmp_path):
    model = toy_model(seed=5)
    model.save_safetensors(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({
        "num_hidden_layers": TOY.num_layers, "hidden_size": TOY.hidden_size,
        "intermediate_size": TOY.intermediate_size, "num_attention_heads": TOY.num_q_heads,
        "num_key_value_heads": TOY.num_kv_heads, "vocab_size": TOY.vocab_size,
        "rope_theta": TOY.rope_theta, "rms_norm_eps": TOY.rms_norm_eps,
        "architectures": ["LlamaForCausalLM"]}))
    loaded = LlamaModel.from_safetensors(tmp_path / "model.safetensors")  # config.json found
    assert loaded.config.head_dim == TOY.head_dim and loaded.config.num_layers == TOY.num_layers
    tokens = list(range(1, 30))
    a = DenseReference(model).logits_without_cache(tokens)
    b = DenseReference(loaded).logits_without_cache(tokens)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="missing"):
        LlamaModel.from_safetensors(tmp_path / "model.safetensors", TOY.replace(num_layers=3))
    with pytest.raises(FileNotFoundError, match="config"):
        (tmp_path / "config.json").unlink()
        LlamaModel.from_safetensors(tmp_path / "model.safetensors")


def test_tied_embeddings_checkpoint(tmp_path):
    config = ModelConfig(tie_word_embeddings=True)
    model = LlamaModel.random(config, seed=2)
    assert "lm_head.weight" not in model.state_dict()
    model.save_safetensors(tmp_path / "tied.safetensors")
    loaded = LlamaModel.from_safetensors(tmp_path / "tied.safetensors", config)
    assert loaded.lm_head.data_ptr() == loaded.embed.data_ptr()
