"""Every call that releases the GIL, run while another thread changes its arguments (issue 19).

The calls validate their index arrays and then run without the GIL; they must use what they
validated (a copy), so a second thread changing one entry in between can neither make them write
outside the pool nor read outside it. The pools sit inside larger arrays whose tail is a guard
region: a write through an index that changed after the check would land there. (Under the
sanitizer build CTest runs this file with ASan, which also catches out-of-bounds reads.)"""

import signal
import sys
import threading

import numpy as np
import pytest

import pagedkv
from conftest import make_manager

pytestmark = pytest.mark.skipif("attention" not in pagedkv.bound_areas,
                                reason="the attention area was not built into the module")

ITERATIONS = 200
GUARD = 1234.5
NUM_BLOCKS = 1024  # large index arrays: the check and the use of their last entry lie far apart
BLOCK = 16


def guarded_pool(num_blocks=NUM_BLOCKS, guard_blocks=4, heads=1, dim=4):
    """A pool array followed (in the same buffer) by guard blocks filled with GUARD."""
    whole = np.zeros((num_blocks + guard_blocks, 1, 2, heads, BLOCK, dim), np.float32)
    whole[num_blocks:] = GUARD
    pool = whole[:num_blocks]
    assert pool.flags.c_contiguous
    return whole, pool


def guard_intact(whole):
    return bool(np.all(whole[NUM_BLOCKS:] == GUARD))


def hammer(mutate):
    """Runs mutate() in a loop on another thread until the returned stop() is called."""
    done = threading.Event()

    def loop():
        while not done.is_set():
            mutate()

    t = threading.Thread(target=loop)
    t.start()

    def stop():
        done.set()
        t.join()
    return stop


def test_write_kv_uses_the_slots_it_checked():
    whole, pool = guarded_pool()
    slots = np.arange(NUM_BLOCKS * BLOCK, dtype=np.int64)
    last = len(slots) - 1
    k = np.ones((len(slots), 1, 4), np.float32)

    def flip():  # the last slot points into the guard block for an instant, again and again
        slots[last] = NUM_BLOCKS * BLOCK + 3
        slots[last] = last

    stop = hammer(flip)
    try:
        for _ in range(ITERATIONS):
            try:
                pagedkv.write_kv(pool, 0, slots, k, k)
            except ValueError:
                pass
    finally:
        stop()
    assert guard_intact(whole)


@pytest.mark.parametrize("extend", [False, True])
def test_attention_uses_the_page_table_it_checked(extend):
    whole, pool = guarded_pool()
    whole[NUM_BLOCKS:] = np.nan  # a read of a guard block would make the output NaN
    pool[...] = 0.5
    indptr = np.array([0, NUM_BLOCKS], np.int32)
    indices = np.arange(NUM_BLOCKS, dtype=np.int32)
    last_len = np.array([BLOCK], np.int32)
    qo = np.array([0, 1], np.int32)
    q = np.ones((1, 1, 4), np.float32)

    def flip():
        indices[-1] = NUM_BLOCKS + 1
        indices[-1] = NUM_BLOCKS - 1

    stop = hammer(flip)
    try:
        for _ in range(ITERATIONS):
            try:
                if extend:
                    out = pagedkv.paged_attention_extend(pool, 0, q, qo, indptr, indices, last_len)
                else:
                    out = pagedkv.paged_attention_decode(pool, 0, q, indptr, indices, last_len)
                assert np.all(np.isfinite(out))
            except ValueError:
                pass
    finally:
        stop()


@pytest.mark.parametrize("kind", ["copy", "swap", "raw_copy"])
def test_block_copies_use_the_pairs_they_checked(kind):
    whole, pool = guarded_pool()
    host_whole, host = guarded_pool()
    n = NUM_BLOCKS // 2
    pairs = np.stack([np.arange(n), np.arange(n, 2 * n)], axis=1).astype(np.uint32)

    def flip():
        pairs[-1, 1] = NUM_BLOCKS + 1
        pairs[-1, 1] = NUM_BLOCKS - 1

    stop = hammer(flip)
    try:
        for _ in range(ITERATIONS):
            try:
                if kind == "copy":
                    pagedkv.copy_blocks(pool, pairs)
                elif kind == "swap":
                    pagedkv.swap_blocks(pool, host, pairs)
                else:
                    pagedkv.raw.copy_blocks(pool.ctypes.data, pool.strides[0], NUM_BLOCKS, pairs,
                                            backend="cpu")
            except ValueError:
                pass
    finally:
        stop()
    assert guard_intact(whole) and guard_intact(host_whole)


def test_concurrent_kernels_share_one_worker_pool():
    bm = make_manager(block_size=4, gpu_num_blocks=32)
    bm.add_sequence(1, list(range(12)))
    layout = bm.build_batch([1])
    cache = bm.kv_cache(0)
    cache[...] = 0.25
    cpu_pool = pagedkv.CpuWorkerPool(2)
    q = np.ones((1, 4, 8), np.float32)
    expected = pagedkv.attention_decode(cache, 0, q, layout, cpu_pool=cpu_pool)
    errors = []

    def run():
        try:
            for _ in range(ITERATIONS // 3):
                out = pagedkv.attention_decode(cache, 0, q, layout, cpu_pool=cpu_pool)
                assert np.allclose(out, expected)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.skipif("scheduler" not in pagedkv.bound_areas, reason="scheduler not built")
def test_simulate_reads_its_own_copy_of_the_workload():
    spec = pagedkv.ModelSpec.preset("llama-2-7b")
    cfg = pagedkv.SimulatorConfig(model=spec, gpu=pagedkv.GpuSpec.preset("h100"),
                                  compute=pagedkv.ModelCompute.for_model(spec), policy="paged")
    w = pagedkv.Workload()
    w.name = "w"
    originals = [pagedkv.Request(request_id=i, arrival_time_s=0.001 * i, prompt_tokens=64,
                                 output_tokens=8) for i in range(400)]
    w.requests = originals
    others = [pagedkv.Request(request_id=i, prompt_tokens=1, output_tokens=1) for i in range(3)]

    def replace():
        # Replacing w.requests frees the vector the simulation would otherwise be reading.
        w.requests = others
        w.requests = originals

    stop = hammer(replace)
    try:
        results = [pagedkv.simulate(w, cfg) for _ in range(3)]
    finally:
        stop()
    for r in results:
        assert r.summary.requests_total in (3, 400)
        assert r.summary.requests_completed == r.summary.requests_total


@pytest.mark.skipif("scheduler" not in pagedkv.bound_areas, reason="scheduler not built")
def test_simulate_stops_on_ctrl_c():
    """A SIGINT that arrives while simulate runs raises KeyboardInterrupt from inside the call
    (the run polls for signals); the profiler hook shows the handler ran before the call left."""
    w = pagedkv.load_workload("synthetic:n=2000000,rate=100000,prompt=fixed:16,output=fixed:2")
    spec = pagedkv.ModelSpec.preset("llama-2-7b")
    cfg = pagedkv.SimulatorConfig(model=spec, gpu=pagedkv.GpuSpec.preset("h100"),
                                  compute=pagedkv.ModelCompute.for_model(spec), policy="paged")
    state = {"inside": False, "handled_inside": None}
    main = threading.main_thread().ident
    assert threading.get_ident() == main

    def profile(frame, event, arg):
        if getattr(arg, "__name__", "") == "simulate":
            if event == "c_call":
                state["inside"] = True
            elif event in ("c_return", "c_exception"):
                state["inside"] = False

    def handler(signum, frame):
        state["handled_inside"] = state["inside"]
        raise KeyboardInterrupt

    def send_when_inside():
        while not state["inside"]:
            threading.Event().wait(0.001)
        signal.pthread_kill(main, signal.SIGINT)

    old = signal.signal(signal.SIGINT, handler)
    sender = threading.Thread(target=send_when_inside)
    sys.setprofile(profile)
    try:
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            pagedkv.simulate(w, cfg)
    finally:
        sys.setprofile(None)
        signal.signal(signal.SIGINT, old)
        sender.join()
    assert state["handled_inside"] is True


def test_flush_remote_writes_while_the_manager_is_used():
    cfg = pagedkv.CacheConfig(block_size_tokens=4, gpu_num_blocks=64, host_num_blocks=16)
    cfg.remote.url = "memory://gil-threads-test"
    cfg.remote.admit_hits = 0
    bm = pagedkv.BlockManager(pagedkv.ModelSpec(name="toy", num_layers=1, num_q_heads=2,
                                                num_kv_heads=1, head_dim=4, kv_dtype="fp32"),
                              cfg)
    flushed = []
    stop = hammer(lambda: flushed.append(bm.flush_remote_writes(0.001)))
    try:
        for seq in range(ITERATIONS // 3):
            bm.add_sequence(seq, [seq * 100 + t for t in range(8)])
            bm.mark_computed(seq, 8)
            bm.free(seq)
    finally:
        stop()
    assert bm.flush_remote_writes(10.0)
    assert flushed
    bm.check_invariants()
