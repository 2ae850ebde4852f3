"""ModelSpec, CacheConfig, enums and the sizing calculator from Python."""

import json

import pytest

import pagedkv
from conftest import toy_spec


def test_enums_parse_from_strings():
    assert pagedkv.DType("fp16") == pagedkv.DType.FP16
    assert pagedkv.DType("bfloat16") == pagedkv.DType.BF16
    assert pagedkv.DType.FP32.itemsize == 4
    assert pagedkv.DType.FP16.label == "fp16"
    assert pagedkv.Tier("host") == pagedkv.Tier.HOST
    assert pagedkv.dtype_size("int8") == 1
    with pytest.raises(ValueError):
        pagedkv.DType("fp12")


def test_presets_round_trip_through_json():
    names = pagedkv.ModelSpec.preset_names()
    assert "llama-3-8b" in names
    for name in names:
        spec = pagedkv.ModelSpec.preset(name)
        spec.validate()
        again = pagedkv.ModelSpec.from_json(spec.to_json())
        assert again == spec
        assert spec.num_layers == len(spec.layers)
        assert len(spec.groups()) >= 1
    llama = pagedkv.ModelSpec.preset("llama-3-8b")
    assert (llama.num_layers, llama.num_kv_heads, llama.head_dim) == (32, 8, 128)
    assert "llama-3-8b" in repr(llama)


def test_unknown_preset_is_key_error():
    with pytest.raises(KeyError, match="unknown model preset"):
        pagedkv.ModelSpec.preset("no-such-model")


def test_model_spec_from_json_and_layers():
    text = json.dumps({"name": "hyb", "num_q_heads": 8, "num_kv_heads": 2, "head_dim": 64,
                       "kv_dtype": "bf16", "layers": ["full", "sliding:128", "full", "shares:0"]})
    spec = pagedkv.ModelSpec.from_json(text)
    assert spec.kv_dtype == pagedkv.DType.BF16
    assert [str(l) for l in spec.layers] == ["full", "sliding:128", "full", "shares:0"]
    assert spec.layers[1].kind == pagedkv.AttentionKind.SLIDING
    assert spec.layers[1].window_tokens == 128
    assert spec.storage_layer(3) == 0
    assert spec.num_storage_layers() == 3
    kinds = [g.kind for g in spec.groups()]
    assert pagedkv.AttentionKind.FULL in kinds and pagedkv.AttentionKind.SLIDING in kinds
    with pytest.raises(ValueError, match="model JSON"):
        pagedkv.ModelSpec.from_json('{"name": 3}')
    with pytest.raises(ValueError):
        pagedkv.ModelSpec.from_json("not json")


def test_model_spec_constructor_validates():
    spec = toy_spec(layers=["full", "sliding:16"])
    assert spec.num_layers == 2
    with pytest.raises(ValueError):
        toy_spec(num_kv_heads=3)  # 4 query heads are not a multiple of 3
    with pytest.raises(ValueError, match="layers were listed"):
        toy_spec(num_layers=3, layers=["full"])
    unchecked = toy_spec(num_kv_heads=3, validate=False)
    with pytest.raises(ValueError):
        unchecked.validate()
    spec.layers = ["full", "full", "full"]
    assert spec.num_layers == 3
    assert spec.bytes_per_token_per_layer() == 2 * 2 * 8 * 4


def test_cache_config_kwargs_and_validate():
    cfg = pagedkv.CacheConfig(block_size_tokens=32, gpu_num_blocks=10, watermark=0.1)
    assert cfg.block_size_tokens == 32 and cfg.gpu_num_blocks == 10
    assert cfg.gpu_tier == pagedkv.Tier.GPU
    cfg.gpu_tier = "virtual"
    assert cfg.gpu_tier == pagedkv.Tier.VIRTUAL
    cfg.validate()
    with pytest.raises(TypeError, match="no field 'blocksize'"):
        pagedkv.CacheConfig(blocksize=3)
    bad = pagedkv.CacheConfig(block_size_tokens=0, gpu_num_blocks=4)
    with pytest.raises(ValueError, match="cache config"):
        bad.validate()
    assert "block_size_tokens=32" in repr(cfg)


def test_sizing_calculator():
    spec = pagedkv.ModelSpec.preset("llama-3-8b")
    r = pagedkv.compute_sizing(spec, gpu_memory_bytes=pagedkv.parse_byte_size("80GiB"),
                               context_tokens=4096, block_size_tokens=16,
                               weights_bytes=16 * 10**9, gpu_memory_fraction=0.9)
    # 32 layers * 2 (K, V) * 8 heads * 128 dims * 2 bytes
    assert r.bytes_per_token == 131072
    assert r.bytes_per_block == 16 * 131072
    assert r.num_blocks == r.budget_bytes // r.bytes_per_block
    assert r.max_tokens == r.num_blocks * 16
    assert r.groups[0].num_layers == 32
    with pytest.raises(ValueError):
        pagedkv.compute_sizing(spec, gpu_memory_bytes=0)
    assert pagedkv.parse_byte_size("24GB") == 24 * 10**9
    assert pagedkv.format_bytes(1 << 30) == "1.00 GiB"
    with pytest.raises(ValueError):
        pagedkv.parse_byte_size("lots")


def test_set_log_level():
    pagedkv.set_log_level("error")
    with pytest.raises(ValueError):
        pagedkv.set_log_level("loud")
