"""The Python boundary refuses what it cannot use as given (issue 19): every array argument is
checked for dtype, rank, shape and range (TypeError / ValueError, never a silent cast), pool
arrays must be numeric, page tables must be well formed, batch ids unique, outputs of
Scheduler.step completed once, workloads valid, and ModelSpec capped like the JSON path."""

import math

import numpy as np
import pytest

import pagedkv
from conftest import make_manager, toy_spec

HAVE_ATTENTION = "attention" in pagedkv.bound_areas
HAVE_SCHEDULER = "scheduler" in pagedkv.bound_areas


@pytest.fixture
def bm():
    return make_manager(block_size=4, gpu_num_blocks=32, host_num_blocks=8)


# ---- Integer arguments: no float, bool or object ids, no wrapping, no flattening -------------

@pytest.mark.parametrize("prompt", [
    np.array([1.5, 2.0]),               # float token ids were truncated
    np.array([1.0, 2.0], np.float32),
    [1.0, 2.0],
    [True, False],
    np.array([1, 2], dtype=object),
    [1, "2"],
    [[1, 2], [3]],                      # ragged
    None,
])
def test_prompts_must_be_integers(bm, prompt):
    with pytest.raises(TypeError):
        bm.add_sequence(1, prompt)
    assert len(bm) == 0


def test_token_ids_beyond_int32_are_refused_not_wrapped(bm):
    # [2**32 + 1, ...] used to hit the pages of [1, ...].
    bm.add_sequence(1, [1, 2, 3, 4, 0])
    bm.mark_computed(1, 5)
    with pytest.raises(ValueError, match=r"prompt\[0\] = 4294967297 is outside"):
        bm.add_sequence(2, [2**32 + 1, 2, 3, 4, 0])
    with pytest.raises(ValueError, match="outside"):
        bm.add_sequence(2, np.array([2**31, 1], np.int64))
    with pytest.raises(TypeError):  # beyond int64: an object array
        bm.add_sequence(2, [2**70, 1])
    assert bm.can_admit(np.array([1, 2, 3, 4, 0], np.uint64)).num_cached_tokens == 4
    assert 2 not in bm


def test_two_dimensional_prompts_are_not_flattened(bm):
    with pytest.raises(ValueError, match="must be 1-D, got shape \\(2, 4\\)"):
        bm.add_sequence(1, np.arange(8).reshape(2, 4))
    with pytest.raises(ValueError, match="must be 1-D"):
        bm.add_sequence(1, 5)  # a prompt is a sequence of ids
    with pytest.raises(ValueError, match="must be an int or 1-D"):
        bm.append_tokens(1, np.zeros((2, 2), np.int32))


def test_other_integer_dtypes_and_views_are_converted_exactly(bm):
    bm.add_sequence(1, np.array([5, 6, 7], np.int16))
    bm.add_sequence(2, np.arange(20, dtype=np.int64)[::3])       # a strided view
    assert bm.num_tokens(2) == 7
    bm.append_tokens(1, np.uint8(200))
    assert bm.num_tokens(1) == 4


def test_byte_swapped_arrays_are_type_errors(bm):
    with pytest.raises(TypeError, match="byte order"):
        bm.add_sequence(4, np.array([9, 8, 7], ">i8"))


def test_sequence_ids_and_counts(bm):
    bm.add_sequence(1, [1, 2, 3])
    with pytest.raises(ValueError, match=r"seq_ids\[0\] = -1"):
        bm.swap_out([-1])
    with pytest.raises(TypeError):
        bm.append_token_batch(np.array([1.0]), np.array([4], np.int32))
    with pytest.raises(TypeError):
        bm.mark_computed_batch([1], [2.0])
    with pytest.raises(TypeError):
        bm.reorder_beams([1], [0.0])
    bm.mark_computed_batch(np.array([1], np.int32), [2])
    assert bm.num_computed_tokens(1) == 2


def test_build_batch_refuses_duplicates_and_negative_context(bm):
    bm.add_sequence(1, [1, 2, 3, 4, 5])
    bm.add_sequence(2, [6, 7])
    with pytest.raises(ValueError, match="lists sequence 1 twice"):
        bm.build_batch([1, 2, 1])
    with pytest.raises(ValueError, match=r"num_context_tokens\[0\] = -3"):
        bm.build_batch([1], num_new_tokens=0, num_context_tokens=[-3])
    with pytest.raises(ValueError):
        bm.build_batch([1, 2], num_new_tokens=[1, -1])
    with pytest.raises(TypeError):
        bm.build_batch([1], num_new_tokens=1.0)
    layout = bm.build_batch([1, 2], num_new_tokens=[2, 1], num_context_tokens=[4, 2])
    assert list(layout.query_indptr) == [0, 2, 3]
    assert bm.build_batch(np.array([1, 2], np.uint64), num_context_tokens=2).batch_size == 2


# ---- Kernels: pools, rows, slot mappings and page tables ------------------------------------

pytestmark_attention = pytest.mark.skipif(not HAVE_ATTENTION, reason="attention not built")


@pytestmark_attention
def test_object_and_non_numeric_pools_are_refused(bm):
    pairs = np.array([[0, 1]], np.uint32)
    for bad in (np.empty((4, 8), dtype=object), np.zeros((4, 8), np.bool_),
                np.zeros((4, 8), np.complex64), np.zeros(4, "U3")):
        with pytest.raises(TypeError):
            pagedkv.copy_blocks(bad, pairs)
        with pytest.raises(TypeError):
            pagedkv.swap_blocks(bad, np.zeros((4, 8), np.float32), pairs)
    cache = bm.kv_cache(0)
    with pytest.raises(ValueError, match="C-contiguous"):
        pagedkv.copy_blocks(cache[:, :, :, :, ::2], pairs)
    with pytest.raises(ValueError, match="writeable"):
        ro = cache.view()
        ro.flags.writeable = False
        pagedkv.copy_blocks(ro, pairs)


@pytestmark_attention
def test_block_pairs_accept_uint32_and_int64_and_refuse_floats(bm):
    cache = bm.kv_cache(0)
    cache[...] = np.arange(cache.size, dtype=np.float32).reshape(cache.shape)
    pagedkv.copy_blocks(cache, np.array([[0, 1]], np.uint32))   # what take_cache_ops hands out
    pagedkv.copy_blocks(cache, np.array([[2, 3]], np.int64))
    pagedkv.copy_blocks(cache, [[4, 5]])
    pagedkv.copy_blocks(cache, [])
    pagedkv.copy_blocks(cache, np.zeros((0, 2), np.uint32))
    assert np.array_equal(cache[1], cache[0]) and np.array_equal(cache[5], cache[4])
    for bad in (np.array([[0, 1]], np.float64), np.array([[0, 1]], dtype=object)):
        with pytest.raises(TypeError):
            pagedkv.copy_blocks(cache, bad)
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        pagedkv.copy_blocks(cache, np.array([0, 1, 2], np.int64))
    with pytest.raises(ValueError):
        pagedkv.copy_blocks(cache, [[0, 2**40]])
    with pytest.raises(ValueError):
        pagedkv.copy_blocks(cache, [[0, 99]])   # beyond the pool: the kernel's check


@pytestmark_attention
def test_swap_needs_two_distinct_pools_of_one_dtype(bm):
    cache = bm.kv_cache(0)
    with pytest.raises(ValueError, match="overlap"):
        pagedkv.swap_blocks(cache[0:8], cache[4:12], [[0, 1]])
    with pytest.raises(TypeError, match="one dtype"):
        pagedkv.swap_blocks(cache, np.zeros(cache.shape, np.float16), [[0, 1]])
    host = bm.kv_cache(0, tier="host")
    pagedkv.swap_blocks(cache, host, np.array([[3, 0]], np.uint32))
    assert np.array_equal(host[0], cache[3])


@pytestmark_attention
def test_write_kv_refuses_float_slots_and_non_float_rows(bm):
    bm.add_sequence(1, [1, 2, 3, 4, 5])
    layout = bm.build_batch([1], num_new_tokens=5)
    cache = bm.kv_cache(0)
    cache[...] = 0
    k = np.ones((5, 2, 8), np.float32)
    with pytest.raises(TypeError, match="slot_mapping must hold integers"):
        pagedkv.write_kv(cache, 0, layout.slot_mapping.astype(np.float64), k, k)
    with pytest.raises(TypeError, match="key must be a float array"):
        pagedkv.write_kv(cache, 0, layout.slot_mapping, k.astype(np.int32), k)
    with pytest.raises(TypeError):
        pagedkv.write_kv(cache, 0, layout.slot_mapping, k.astype(object), k)
    with pytest.raises(ValueError, match="must be 1-D"):
        pagedkv.write_kv(cache, 0, layout.slot_mapping.reshape(5, 1), k, k)
    with pytest.raises(ValueError):  # a slot beyond the pool: nothing written
        pagedkv.write_kv(cache, 0, np.array([0, 1, 2, 3, 10**9]), k, k)
    pagedkv.write_kv(cache, 0, layout.slot_mapping.astype(np.int32), k.astype(np.float64), k)
    assert cache[..., 0, :, :, :].sum() == 5 * 2 * 8


@pytestmark_attention
def test_page_tables_are_checked_before_the_kernel_runs(bm):
    bm.add_sequence(1, [1, 2, 3, 4, 5])
    layout = bm.build_batch([1])
    cache = bm.kv_cache(0)
    q = np.zeros((1, 4, 8), np.float32)
    out = pagedkv.attention_decode(cache, 0, q, layout)
    assert out.shape == (1, 4, 8)
    idx, last = layout.page_indices, layout.last_page_len
    with pytest.raises(ValueError, match="decreases"):  # used to read past page_indices
        pagedkv.paged_attention_decode(cache, 0, np.zeros((2, 4, 8), np.float32),
                                       np.array([0, 100, 2], np.int32), idx, np.array([1, 1]))
    with pytest.raises(ValueError, match="page_indices has"):
        pagedkv.paged_attention_decode(cache, 0, q, np.array([0, 5]), idx, last)
    with pytest.raises(TypeError):
        pagedkv.paged_attention_decode(cache, 0, q, layout.page_indptr.astype(float), idx, last)
    with pytest.raises(TypeError, match="q must be float32 or float16"):
        pagedkv.attention_decode(cache, 0, q.astype(np.float64), layout)
    with pytest.raises(TypeError):
        pagedkv.attention_decode(cache, 0, q.astype(np.int32), layout)
    with pytest.raises(ValueError, match="out must be"):
        pagedkv.attention_decode(cache, 0, q, layout, out=np.zeros((1, 4, 8), np.float32)[:, :, ::1][:, ::-1])
    with pytest.raises(ValueError, match="qo_indptr"):
        pagedkv.paged_attention_extend(cache, 0, q, np.array([0]), layout.page_indptr, idx, last)
    with pytest.raises(TypeError):
        pagedkv.paged_attention_extend(cache, 0, q, np.array([0.0, 1.0]), layout.page_indptr, idx,
                                       last)


# ---- Scheduler and simulator -----------------------------------------------------------------

def make_policy(**kw):
    return pagedkv.make_kv_cache_policy(pagedkv.PolicyConfig(
        model=toy_spec(), block_size_tokens=4, capacity_tokens=256, max_model_len=128,
        max_new_tokens=16, **kw))


@pytest.mark.skipif(not HAVE_SCHEDULER, reason="scheduler not built")
def test_complete_step_refuses_a_completed_or_stale_output():
    sched = pagedkv.Scheduler(pagedkv.SchedulerConfig(), make_policy())
    sched.add_request(pagedkv.SchedulerRequest(1, [1, 2, 3], max_output_tokens=3))
    prefill = sched.step()
    sched.complete_step(prefill, [7])
    decode = sched.step()
    sched.complete_step(decode, [8])
    tokens = sched.sequence_tokens(decode.scheduled[0].seq_id)
    with pytest.raises(ValueError, match="already completed"):
        sched.complete_step(decode, [9])   # used to finish the request early
    with pytest.raises(ValueError, match="stale"):
        sched.complete_step(prefill, [9])
    assert sched.sequence_tokens(decode.scheduled[0].seq_id) == tokens
    sched.check_invariants()
    last = sched.step()
    assert sched.complete_step(last, [10]).finished_requests == [1]
    with pytest.raises(TypeError):
        sched.complete_step(last, [1.5])


@pytest.mark.skipif(not HAVE_SCHEDULER, reason="scheduler not built")
def test_rejections_carry_their_cause():
    sched = pagedkv.Scheduler(pagedkv.SchedulerConfig(), make_policy())
    sched.add_request(pagedkv.SchedulerRequest(1, list(range(200)), max_output_tokens=8))
    out = sched.step()
    assert out.rejected_requests == [1] and out.rejection_causes == ["too_long"]


@pytest.mark.skipif(not HAVE_SCHEDULER, reason="scheduler not built")
def test_policy_can_admit_refuses_float_tokens():
    with pytest.raises(TypeError):
        make_policy().can_admit(pagedkv.AdmitRequest(prompt_tokens=2, output_tokens=1,
                                                     stored_tokens=2), [1.0, 2.0])


def small_simulation():
    spec = pagedkv.ModelSpec.preset("llama-2-7b")
    cfg = pagedkv.SimulatorConfig(model=spec, gpu=pagedkv.GpuSpec.preset("h100"),
                                  compute=pagedkv.ModelCompute.for_model(spec), policy="paged")
    w = pagedkv.Workload()
    w.name = "w"
    w.requests = [pagedkv.Request(request_id=i, arrival_time_s=0.01 * i, prompt_tokens=16,
                                  output_tokens=4) for i in range(10)]
    return w, cfg


@pytest.mark.skipif(not HAVE_SCHEDULER, reason="scheduler not built")
@pytest.mark.parametrize("arrival,message", [
    (math.nan, "must be finite and >= 0"),     # used to loop forever
    (-1.0, "must be finite and >= 0"),
    (math.inf, "must be finite"),
    (0.001, "sorted arrivals"),
])
def test_simulate_validates_the_workload(arrival, message):
    w, cfg = small_simulation()
    requests = w.requests
    requests[5].arrival_time_s = arrival
    w.requests = requests
    with pytest.raises(ValueError, match=message):
        pagedkv.simulate(w, cfg)
    with pytest.raises(ValueError):
        w.validate()


@pytest.mark.skipif(not HAVE_SCHEDULER, reason="scheduler not built")
def test_simulate_refuses_absurd_requests():
    w, cfg = small_simulation()
    w.requests = [pagedkv.Request(request_id=0, prompt_tokens=2**31 - 1, output_tokens=2**31 - 1)]
    with pytest.raises(ValueError, match="16777216"):
        pagedkv.simulate(w, cfg)
    w.requests = [pagedkv.Request(request_id=0, prompt_tokens=8, output_tokens=2,
                                  num_samples=10**6)]
    with pytest.raises(ValueError, match="num_samples"):
        pagedkv.simulate(w, cfg)


# ---- ModelSpec -------------------------------------------------------------------------------

def test_model_spec_layers_are_capped_like_the_json_path():
    with pytest.raises(ValueError, match="exceeds the limit of 100000 layers"):
        pagedkv.ModelSpec(num_layers=10**8, num_q_heads=1, num_kv_heads=1, head_dim=1)
    with pytest.raises(ValueError, match="limit"):
        pagedkv.ModelSpec(layers=["full"] * 100001, num_q_heads=1, num_kv_heads=1, head_dim=1)
    with pytest.raises(ValueError, match="65536"):
        pagedkv.ModelSpec(num_layers=1, num_q_heads=1 << 20, num_kv_heads=1, head_dim=1)
    with pytest.raises(ValueError, match="nested deeper"):
        pagedkv.ModelSpec.from_json("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="character device"):
        pagedkv.ModelSpec.from_json_file("/dev/zero")
    spec = pagedkv.ModelSpec(num_layers=100000, num_q_heads=1, num_kv_heads=1, head_dim=1)
    assert spec.num_layers == 100000
