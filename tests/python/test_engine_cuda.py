"""The reference engine on a GPU: K/V in pagedkv's device pools (torch sees them through
__cuda_array_interface__, no copy), pagedkv's CUDA kernels through pagedkv.raw, bf16.

The reference is the same weights (the bf16 values, in fp32) on the CPU with a dense cache,
teacher-forced along the tokens the engine chose. Stated tolerance: every logit within
BF16_REL of the largest |logit| of its row (bf16 keeps 8 bits of mantissa, about 0.4% per
rounding, compounded over the layers), and wherever the reference's best token leads the
second by more than twice that tolerance the engine picked the reference's token (elsewhere
the choice is within bf16 noise and may differ).

Skipped (with the reason) without a CUDA device, a CUDA build of PyTorch, or pagedkv built
with -DPAGEDKV_CUDA=ON; the CPU tests (test_engine.py) cover the same engine in fp32."""

import numpy as np
import pytest

from engine_util import torch

import pagedkv
from pagedkv.engine import (DenseReference, Engine, EngineConfig, LlamaModel, ModelConfig,
                            Request, SpeculativeDecoder)
from pagedkv.engine.workload import mixed_requests

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and pagedkv.cuda_device_available()),
    reason="needs a CUDA device, PyTorch built with CUDA and pagedkv built with "
           "-DPAGEDKV_CUDA=ON (test_engine.py covers the engine on the CPU)")

GPU_TOY = ModelConfig(vocab_size=256, hidden_size=256, intermediate_size=512, num_layers=2,
                      num_q_heads=4, num_kv_heads=2, head_dim=64)  # the CUDA kernels' head dims
BF16_REL = 0.03


@pytest.fixture(scope="module")
def models():
    gpu = LlamaModel.random(GPU_TOY, seed=1, device="cuda", dtype=torch.bfloat16)
    cpu = LlamaModel(GPU_TOY, {k: v.float().cpu() for k, v in gpu.state_dict().items()})
    return gpu, cpu


def check_teacher_forced(ref_model, prompt, tokens, rows):
    """Every recorded engine row {position: logits} within the tolerance of the reference run
    along the same tokens. Returns [(position, the reference's best token)] where the reference
    is decisive (its best leads the second by more than twice the tolerance)."""
    full = DenseReference(ref_model).logits_without_cache(list(prompt) + tokens[:-1]).numpy()
    decisive = []
    for position, got in rows.items():
        want = full[position - 1]
        tol = BF16_REL * max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got - want).max())
        assert err <= tol, f"position {position}: logits differ by {err:.3g} > {tol:.3g}"
        top = np.sort(want)[-2:]
        if top[1] - top[0] > 2 * tol:
            decisive.append((position, int(np.argmax(want))))
    return decisive


def test_device_pool_is_zero_copy(models):
    gpu, _ = models
    engine = Engine(gpu, EngineConfig(device="cuda", num_gpu_blocks=32, num_host_blocks=16,
                                      preemption="swap"))
    assert engine.bm.pool_is_device_memory(0)
    assert engine.kv.gpu_tensor.is_cuda
    assert engine.kv.gpu_tensor.data_ptr() == engine.bm.pool_ptr(0, pagedkv.Tier.GPU)


def test_mixed_requests_on_cuda(models):
    gpu, cpu = models
    requests = mixed_requests(GPU_TOY.vocab_size, 32, seed=3, block_size=16, max_prompt=600,
                              min_new_tokens=4, max_new_tokens=24, beams=False)
    engine = Engine(gpu, EngineConfig(device="cuda", block_size=16, num_gpu_blocks=56,
                                      num_host_blocks=200, preemption="swap", max_num_seqs=16,
                                      max_num_batched_tokens=128, record_logits=True,
                                      check_tokens=True))
    for r in requests:
        engine.add_request(r)
    outputs = engine.run()
    decisive = 0
    for r in requests:
        out = outputs[r.request_id]
        assert not out.rejected
        for k, tokens in enumerate(out.outputs):
            rows = {pos: row for kk, pos, row in out.logits if kk == k}
            checked = check_teacher_forced(cpu, r.prompt, tokens, rows)
            decisive += len(checked)
            if r.sampling.greedy:
                for pos, best in checked:
                    assert tokens[pos - len(r.prompt)] == best, (r.request_id, pos)
    assert decisive > 100
    assert engine.summary()["preemptions"] > 0
    engine.check_invariants()
    for g in engine.bm.stats().groups:
        assert g.gpu_in_use_blocks == 0 and g.host_in_use_blocks == 0


def test_greedy_tokens_where_the_reference_is_decisive(models):
    gpu, cpu = models
    requests = [r for r in mixed_requests(GPU_TOY.vocab_size, 16, seed=4, block_size=16,
                                          max_prompt=300, sampling=False, beams=False)]
    engine = Engine(gpu, EngineConfig(device="cuda", num_gpu_blocks=256, record_logits=True))
    for r in requests:
        engine.add_request(r)
    outputs = engine.run()
    spec = SpeculativeDecoder(gpu, gpu.truncated(1), num_speculative_tokens=3, device="cuda",
                              num_blocks=256, record_logits=True)
    spec_out = spec.generate([Request(r.request_id, r.prompt, r.max_new_tokens)
                              for r in requests])
    ref = DenseReference(cpu)
    for r in requests:
        want, log = ref.generate(r.prompt, r.max_new_tokens)
        for name, got in (("engine", outputs[r.request_id]), ("speculative",
                                                              spec_out[r.request_id])):
            tokens = got.outputs[0]
            # Identical up to the first position where the reference is not decisive.
            for i, position in enumerate(sorted(log)):
                row = log[position]
                tol = BF16_REL * max(1.0, float(np.abs(row).max()))
                top = np.sort(row)[-2:]
                if top[1] - top[0] <= 2 * tol:
                    break
                assert tokens[i] == want[i], (name, r.request_id, position)
    spec.check_invariants()
