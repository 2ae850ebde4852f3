"""Scheduler, policies, workloads and the Simulator from Python (when the scheduler is bound)."""

import numpy as np
import pytest

import pagedkv
from conftest import toy_spec

pytestmark = pytest.mark.skipif("scheduler" not in pagedkv.bound_areas,
                                reason="the scheduler area was not built into the module")


def make_policy(capacity_tokens=256, host_capacity_tokens=0, **kw):
    return pagedkv.make_kv_cache_policy(pagedkv.PolicyConfig(
        model=toy_spec(), block_size_tokens=4, capacity_tokens=capacity_tokens,
        host_capacity_tokens=host_capacity_tokens, max_model_len=128, max_new_tokens=16, **kw))


def test_policy_kinds_and_config_errors():
    assert "paged" in pagedkv.policy_kind_names()
    assert pagedkv.PolicyKind("contiguous-max") == pagedkv.PolicyKind.CONTIGUOUS_MAX
    with pytest.raises(KeyError):
        pagedkv.PolicyKind("nope")
    with pytest.raises(ValueError):
        make_policy(capacity_tokens=0)
    with pytest.raises(TypeError):
        pagedkv.PolicyConfig(capacity=3)
    policy = make_policy()
    assert policy.kind == pagedkv.PolicyKind.PAGED
    bm = policy.block_manager()
    assert bm.group_info(0).gpu_num_blocks == 64 and bm.pool_ptr() == 0  # virtual tier
    check = policy.can_admit(pagedkv.AdmitRequest(prompt_tokens=5, output_tokens=3,
                                                  stored_tokens=5), [1, 2, 3, 4, 5])
    assert check.fits and check.ever_fits
    assert policy.memory_stats().capacity_tokens == 256
    contiguous = make_policy(kind="contiguous-max")
    assert contiguous.block_manager() is None


def test_scheduler_runs_requests_to_completion():
    policy = make_policy(capacity_tokens=64, host_capacity_tokens=64)
    sched = pagedkv.Scheduler(pagedkv.SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=16,
                                                      preemption_mode="swap"), policy)
    del policy  # the scheduler keeps it alive
    rng = np.random.default_rng(3)
    for r in range(10):
        prompt = [int(t) for t in rng.integers(1, 100, size=int(rng.integers(2, 20)))]
        sched.add_request(pagedkv.SchedulerRequest(r, prompt, max_output_tokens=8,
                                                   num_samples=2 if r == 4 else 1,
                                                   beam_width=2 if r == 7 else 1))
    with pytest.raises(RuntimeError):  # duplicate id
        sched.add_request(pagedkv.SchedulerRequest(3, [1], 1))
    with pytest.raises(ValueError):  # empty prompt
        sched.add_request(pagedkv.SchedulerRequest(99, [], 1))
    assert sched.num_waiting == 10
    finished, steps = set(), 0
    while sched.has_work():
        out = sched.step()
        steps += 1
        assert out.num_batched_tokens <= 16
        assert isinstance(out.cache_ops, pagedkv.CacheOps)
        for e in out.scheduled:
            assert e.num_query_tokens >= 1
            toks = sched.sequence_tokens(e.seq_id)
            assert len(toks) >= e.num_context_tokens + e.num_query_tokens
        samples = [7] * sum(e.num_samples for e in out.scheduled)
        beams = {}
        decoding = [e for e in out.scheduled if e.request_id == 7 and not e.is_prefill]
        if decoding:
            beams[7] = [1, 0][:len(decoding)] if len(decoding) == 2 else [0]
        done = sched.complete_step(out, samples, beams=beams)
        finished.update(done.finished_requests)
        sched.check_invariants()
        assert steps < 1000
    assert finished == set(range(10))
    assert sched.policy.counters().copy_bytes >= 0
    with pytest.raises(KeyError):
        sched.sequence_tokens(12345)


def test_complete_step_rejects_wrong_token_count():
    sched = pagedkv.Scheduler(pagedkv.SchedulerConfig(), make_policy())
    sched.add_request(pagedkv.SchedulerRequest(1, [1, 2, 3], 4))
    out = sched.step()
    with pytest.raises(ValueError):
        sched.complete_step(out, [1, 2, 3, 4, 5])


def test_simulator_on_a_synthetic_workload():
    w = pagedkv.Workload()
    w.name = "tiny"
    w.requests = [pagedkv.Request(request_id=i, arrival_time_s=0.01 * i, prompt_tokens=32,
                                  output_tokens=8) for i in range(20)]
    spec = pagedkv.ModelSpec.preset("llama-2-7b")
    cfg = pagedkv.SimulatorConfig(model=spec, gpu=pagedkv.GpuSpec.preset("h100"),
                                  compute=pagedkv.ModelCompute.for_model(spec), policy="paged")
    r = pagedkv.simulate(w, cfg)
    assert r.summary.requests_total == 20 and r.summary.requests_completed == 20
    assert len(r.requests) == 20 and all(x.finish_s >= x.arrival_s for x in r.requests)
    assert r.summary.policy == "paged"
