"""The reference engine (python/pagedkv/engine) against the dense reference: 32 mixed requests
through pagedkv's Scheduler, pools, write_kv and paged attention under continuous batching,
chunked prefill, prefix caching, swap and recompute preemption, n > 1 sampling and beam search;
greedy and sampled tokens identical, beam results identical, logits within 1e-4 at every step.
Also speculative decoding, zero-copy pools and input validation."""

import numpy as np
import pytest

from engine_util import (LOGIT_ATOL, TOY, assert_all_blocks_free_or_cached, compare_with_dense,
                         dense_results, requests_32, toy_model, torch)

import pagedkv
from pagedkv.engine import (DenseKVCache, DenseReference, Engine, EngineConfig, LlamaModel,
                            ModelConfig, Request, SamplingParams, SpeculativeDecoder)


@pytest.fixture(scope="module")
def model():
    return toy_model()


@pytest.fixture(scope="module")
def requests():
    return requests_32()


@pytest.fixture(scope="module")
def reference(model, requests):
    return dense_results(model, requests)


def test_workload_covers_the_cases(requests):
    lengths = [len(r.prompt) for r in requests]
    assert len(requests) == 32 and min(lengths) == 1 and max(lengths) == 600
    assert any(n % 16 == 0 for n in lengths) and any(n > 16 for n in lengths)
    assert any(r.n > 1 for r in requests) and any(r.beam_width > 1 for r in requests)
    assert any(not r.sampling.greedy and r.n == 1 for r in requests)
    prompts = [tuple(r.prompt) for r in requests]
    assert len(set(prompts)) < len(prompts)  # repeated prompts


def test_dense_reference_cache_matches_a_full_forward(model):
    """The reference's cached decode equals one uncached forward over the whole sequence."""
    prompt = list(range(7, 47))
    tokens, log = DenseReference(model).generate(prompt, 8)
    full = DenseReference(model).logits_without_cache(prompt + tokens[:-1]).numpy()
    for position, row in log.items():
        np.testing.assert_allclose(row, full[position - 1], rtol=0, atol=1e-5)
    assert tokens == [int(np.argmax(full[p - 1])) for p in sorted(log)]


# Pools small enough that greedy, n = 2 and beam-search requests all get preempted (the
# workload and the scheduler are deterministic; the test checks that they were).
# kernels 'raw' runs the CUDA code path (pagedkv.raw on tensor addresses) with the CPU kernels.
@pytest.mark.parametrize("preemption,block_size,pool_blocks,max_num_seqs,kernels", [
    ("swap", 16, 56, 16, "auto"),
    ("recompute", 8, 96, 8, "auto"),
    ("swap", 16, 56, 16, "raw"),
])
def test_mixed_requests_match_dense(model, requests, reference, preemption, block_size,
                                    pool_blocks, max_num_seqs, kernels):
    """Every feature at once on a small pool: the engine must preempt, hit the prefix cache,
    copy-on-write, chunk prefills, fork and reorder beams, and still match dense exactly."""
    engine = Engine(model, EngineConfig(
        block_size=block_size, num_gpu_blocks=pool_blocks,
        num_host_blocks=200 if preemption == "swap" else 0, preemption=preemption,
        max_num_seqs=max_num_seqs, max_num_batched_tokens=128, enable_prefix_caching=True,
        record_logits=True, check_tokens=True, kernels=kernels))
    for r in requests:
        engine.add_request(r)
    outputs = engine.run()
    max_err, compared = compare_with_dense(outputs, requests, reference)
    s = engine.summary()
    assert compared > 200
    preempted = {"beams" if r.beam_width > 1 else "n>1" if r.n > 1 else "n=1"
                 for r in requests if outputs[r.request_id].num_preemptions}
    assert preempted == {"beams", "n>1", "n=1"}, (preempted, s)
    assert s["cached_prompt_tokens"] > 0 and s["prefix_hit_pages"] > 0, s
    assert s["cow_pages"] > 0, s
    assert s["chunked_prefills"] > 0, s
    assert s["forks"] > 0 and s["beam_reorders"] > 0, s
    if preemption == "swap":
        assert s["swap_out_blocks"] > 0 and s["swap_in_blocks"] > 0, s
    engine.check_invariants()
    assert_all_blocks_free_or_cached(engine.bm)
    assert not engine.has_work()


def test_pools_are_pagedkv_memory_seen_by_torch_without_copy(model):
    engine = Engine(model, EngineConfig(num_gpu_blocks=16, num_host_blocks=8,
                                        preemption="swap", block_size=16))
    bm, kv = engine.bm, engine.kv
    assert not bm.pool_is_device_memory(0)
    # One address: the manager's pool, the NumPy view the kernels get and torch's tensor.
    assert kv.gpu_tensor.data_ptr() == bm.pool_ptr(0, pagedkv.Tier.GPU)
    assert kv.gpu.ctypes.data == bm.pool_ptr(0, pagedkv.Tier.GPU)
    assert kv.host.ctypes.data == bm.pool_ptr(0, pagedkv.Tier.HOST)
    assert tuple(kv.gpu_tensor.shape) == (16, TOY.num_layers, 2, TOY.num_kv_heads, 16,
                                          TOY.head_dim)
    prompt = list(range(3, 40))  # 37 tokens: three pages, the last partial
    engine.add_request(Request(0, prompt, max_new_tokens=4))
    engine.step()  # the prefill: write_kv puts the prompt's K/V into the pool
    seq = engine.scheduler.request_seq_ids(0)[0]
    blocks = bm.block_table(seq).blocks
    dense = DenseKVCache(model, len(prompt))
    dense.run(model, prompt)
    for layer in range(TOY.num_layers):
        for t in range(len(prompt)):
            page = kv.gpu_tensor[int(blocks[t // 16]), layer]
            torch.testing.assert_close(page[0, :, t % 16], dense.k[layer, :, t], rtol=0,
                                       atol=1e-6)
            torch.testing.assert_close(page[1, :, t % 16], dense.v[layer, :, t], rtol=0,
                                       atol=1e-6)
    engine.run()
    assert_all_blocks_free_or_cached(bm)
    raw = Engine(model, EngineConfig(num_gpu_blocks=16, kernels="raw"))
    assert raw.kv.gpu_tensor.data_ptr() == raw.bm.pool_ptr(0, pagedkv.Tier.GPU)


@pytest.mark.parametrize("k,kernels", [(1, "auto"), (4, "auto"), (4, "raw")])
def test_speculative_decoding_returns_target_greedy(model, requests, k, kernels):
    """A one-layer draft (the target's first layer) proposes k tokens; the target verifies them
    in one extend step; rejected ones are rewound. Output == the target's greedy output."""
    greedy = [Request(r.request_id, r.prompt, r.max_new_tokens) for r in requests]
    ref = DenseReference(model)
    want = {r.request_id: ref.generate(r.prompt, r.max_new_tokens) for r in greedy}
    spec = SpeculativeDecoder(model, model.truncated(1), num_speculative_tokens=k,
                              block_size=16, num_blocks=160, max_num_seqs=8,
                              kernels=kernels, record_logits=True)
    outputs = spec.generate(greedy)
    max_err = 0.0
    for r in greedy:
        tokens, log = want[r.request_id]
        assert outputs[r.request_id].outputs == [tokens], f"request {r.request_id}"
        for _, position, row in outputs[r.request_id].logits:
            max_err = max(max_err, float(np.abs(row - log[position]).max()))
    assert max_err < LOGIT_ATOL
    st = spec.stats
    assert st["accepted"] > 0, st  # some proposals are taken ...
    assert st["rewound_tokens"] > 0, st  # ... and some rewound
    assert st["prefix_hit_tokens"] > 0, st
    assert spec.target.forwards < st["generated"]  # fewer target passes than tokens
    spec.check_invariants()
    assert_all_blocks_free_or_cached(spec.target.bm)
    assert_all_blocks_free_or_cached(spec.draft.bm)


def test_request_that_never_fits_is_rejected(model):
    engine = Engine(model, EngineConfig(num_gpu_blocks=4, block_size=16))
    engine.add_request(Request(0, list(range(100)), max_new_tokens=2))  # 7 pages > 4
    engine.add_request(Request(1, [1, 2, 3], max_new_tokens=2))
    out = engine.run()
    assert out[0].rejected and out[0].outputs == []
    assert not out[1].rejected and len(out[1].outputs[0]) == 2


def test_input_validation(model):
    engine = Engine(model, EngineConfig(num_gpu_blocks=16))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.add_request(Request(0, [1, 2, TOY.vocab_size]))
    with pytest.raises(ValueError, match="position 1"):
        engine.add_request(Request(0, [1, -1]))
    with pytest.raises(TypeError, match="integers"):
        engine.add_request(Request(0, [1.5, 2.0]))
    with pytest.raises(ValueError, match="non-empty"):
        engine.add_request(Request(0, []))
    with pytest.raises(ValueError, match="not both"):
        engine.add_request(Request(0, [1], n=2, beam_width=2))
    with pytest.raises(ValueError, match="greedy"):
        engine.add_request(Request(0, [1], beam_width=2, sampling=SamplingParams(0.5)))
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.add_request(Request(0, [1], max_new_tokens=0))
    engine.add_request(Request(0, [1, 2]))
    with pytest.raises(ValueError, match="already added"):
        engine.add_request(Request(0, [1, 2]))
    with pytest.raises(TypeError):
        engine.add_request((0, [1, 2]))
    with pytest.raises(ValueError, match="num_host_blocks"):
        Engine(model, EngineConfig(preemption="swap"))
    with pytest.raises(ValueError, match="preemption"):
        Engine(model, EngineConfig(preemption="drop"))
    with pytest.raises(ValueError, match="device"):
        Engine(model, EngineConfig(device="cuda"))
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        ModelConfig(num_q_heads=3, num_kv_heads=2)
    with pytest.raises(ValueError, match="head_dim must be even"):
        ModelConfig(head_dim=15)
    weights = model.state_dict()
    del weights["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match="missing.*up_proj"):
        LlamaModel(TOY, weights)
    with pytest.raises(ValueError, match="shape"):
        LlamaModel(TOY.replace(intermediate_size=96), model.state_dict())
    with pytest.raises(ValueError, match="vocabulary"):
        SpeculativeDecoder(model, LlamaModel.random(TOY.replace(vocab_size=128)))
    spec = SpeculativeDecoder(model, model.truncated(1), num_blocks=16)
    with pytest.raises(ValueError, match="greedy"):
        spec.generate([Request(0, [1, 2], n=2)])
    with pytest.raises(ValueError, match="raise num_blocks"):
        spec.generate([Request(0, list(range(250)), max_new_tokens=4)])


def test_policy_gpu_tier_gives_real_pools():
    """PolicyConfig.gpu_tier: VIRTUAL (default, the simulator) has no memory; HOST has."""
    spec = TOY.kv_spec("fp32")
    virtual = pagedkv.make_kv_cache_policy(pagedkv.PolicyConfig(
        model=spec, capacity_tokens=64, block_size_tokens=16))
    assert virtual.block_manager().pool_ptr(0) == 0
    with pytest.raises(RuntimeError):
        virtual.block_manager()._pool_array(0, pagedkv.Tier.GPU, 2, 16, spec.kv_dtype)
    real = pagedkv.make_kv_cache_policy(pagedkv.PolicyConfig(
        model=spec, capacity_tokens=64, block_size_tokens=16, gpu_tier="host"))
    bm = real.block_manager()
    pool = bm._pool_array(0, pagedkv.Tier.GPU, 2, 16, spec.kv_dtype)
    assert pool.shape == (4, 2, 2, 2, 16, 16) and pool.ctypes.data == bm.pool_ptr(0)
