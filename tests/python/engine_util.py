"""Shared pieces of the reference-engine tests (tests/python/test_engine*.py): the toy model,
the 32 mixed requests, the dense reference results and the comparison."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference engine needs PyTorch "
                                            "(apt-get install python3-torch)")

import pagedkv  # noqa: E402

if "scheduler" not in pagedkv.bound_areas or "attention" not in pagedkv.bound_areas:
    pytest.skip("the reference engine needs the scheduler and attention bindings",
                allow_module_level=True)

from pagedkv.engine import DenseReference, LlamaModel, ModelConfig  # noqa: E402
from pagedkv.engine.workload import mixed_requests  # noqa: E402

torch.set_num_threads(1)

TOY = ModelConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2,
                  num_q_heads=4, num_kv_heads=2, head_dim=16)
LOGIT_ATOL = 1e-4


def toy_model(seed=1):
    return LlamaModel.random(TOY, seed=seed)


def requests_32(block_size=16):
    """32 mixed requests: prompts 1..600 tokens (page-aligned ones included), shared prefixes,
    repeated prompts, greedy / sampled / n = 2 / beam search."""
    return mixed_requests(TOY.vocab_size, 32, seed=3, block_size=block_size, max_prompt=600,
                          min_new_tokens=4, max_new_tokens=24)


def dense_results(model, requests):
    """request id -> ('beams', beams, scores, step logits) or ('samples', [(tokens, log)])."""
    ref = DenseReference(model)
    out = {}
    for r in requests:
        if r.beam_width > 1:
            out[r.request_id] = ("beams",) + ref.beam_search(r.prompt, r.beam_width,
                                                             r.max_new_tokens)
        elif r.n > 1:
            out[r.request_id] = ("samples", ref.generate_n(r.prompt, r.max_new_tokens, r.n,
                                                           r.sampling, r.request_id))
        else:
            out[r.request_id] = ("samples", [ref.generate(r.prompt, r.max_new_tokens,
                                                          r.sampling, r.request_id, 0)])
    return out


def compare_with_dense(outputs, requests, reference):
    """Tokens identical, scores and logits within LOGIT_ATOL; returns the max logit error."""
    max_err, compared = 0.0, 0
    for r in requests:
        out = outputs[r.request_id]
        assert not out.rejected, f"request {r.request_id} was rejected"
        ref = reference[r.request_id]
        if ref[0] == "beams":
            _, beams, scores, step_logits = ref
            assert out.outputs == beams, f"request {r.request_id}: beams differ"
            np.testing.assert_allclose(out.scores, scores, rtol=0, atol=LOGIT_ATOL)
            assert len(out.beam_logits) == len(step_logits)
            for got, want in zip(out.beam_logits, step_logits):
                assert got.shape == want.shape
                max_err = max(max_err, float(np.abs(got - want).max()))
                compared += len(got)
        else:
            samples = ref[1]
            assert out.outputs == [t for t, _ in samples], \
                f"request {r.request_id}: tokens differ from the dense reference"
            # A logits row for every token of every sample (rows recomputed after a preemption
            # are recorded again and compared too).
            want_keys = {(k, len(r.prompt) + j) for k in range(r.n)
                         for j in range(r.max_new_tokens)}
            assert {(k, p) for k, p, _ in out.logits} == want_keys, r.request_id
            for k, position, row in out.logits:
                want = samples[k][1][position]
                max_err = max(max_err, float(np.abs(row - want).max()))
                compared += 1
    assert max_err < LOGIT_ATOL, f"logits differ from dense by {max_err:.3g}"
    return max_err, compared


def assert_all_blocks_free_or_cached(bm):
    bm.check_invariants()
    for g in bm.stats().groups:
        assert g.gpu_in_use_blocks == 0, f"{g.gpu_in_use_blocks} GPU blocks still in use"
        assert g.host_in_use_blocks == 0, f"{g.host_in_use_blocks} host blocks still in use"
        assert g.gpu_free_blocks + g.gpu_cached_blocks == g.gpu_num_blocks
        assert g.host_free_blocks + g.host_cached_blocks == g.host_num_blocks
