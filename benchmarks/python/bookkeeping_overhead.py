#!/usr/bin/env python3
"""Per-call overhead of the BlockManager bookkeeping from Python, for one decode step of N
sequences: append_token_batch (one call for all), append_tokens (one call per sequence),
build_batch (the batch's page table as NumPy arrays) and take_cache_ops.

    PYTHONPATH=build/py/python /usr/bin/python3 benchmarks/python/bookkeeping_overhead.py
    ... --smoke   (a few iterations; what CTest runs)

Metadata only: the GPU tier is virtual, so no K/V memory is touched. Prints one line per
measurement: microseconds per call (median and minimum of the repeats; the minimum is the
figure least disturbed by other processes) and nanoseconds per sequence (from the median).
"""

import argparse
import statistics
import time

import numpy as np

import pagedkv


def make_manager(num_seqs, prompt_tokens, block_size, steps):
    spec = pagedkv.ModelSpec.preset("llama-3-8b")
    blocks = num_seqs * ((prompt_tokens + steps + 2) // block_size + 2)
    cfg = pagedkv.CacheConfig(block_size_tokens=block_size, gpu_tier="virtual",
                              gpu_num_blocks=blocks)
    bm = pagedkv.BlockManager(spec, cfg)
    for s in range(num_seqs):
        bm.add_sequence(s, np.arange(prompt_tokens, dtype=np.int32) + s)
    return bm


def timed(fn, iters, repeats):
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        samples.append((time.perf_counter() - t0) / iters)
    return statistics.median(samples) * 1e6, min(samples) * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-seqs", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="a quick run (CTest)")
    args = p.parse_args()
    if args.smoke:
        args.num_seqs, args.iters, args.repeats = 16, 5, 1
    n, iters = args.num_seqs, args.iters
    # A fresh manager per measurement, so every one starts from prompt_tokens-long sequences
    # (build_batch's cost grows with the pages listed; appends grow the sequences).
    fresh = lambda: make_manager(n, args.prompt_tokens, args.block_size,  # noqa: E731
                                 iters * args.repeats + 8)
    ids = np.arange(n, dtype=np.uint64)
    toks = np.full(n, 7, dtype=np.int32)
    id_list, tok_list = [int(i) for i in ids], [7] * n

    results = {}
    bm = fresh()
    results["append_token_batch (NumPy uint64/int32)"] = timed(
        lambda: bm.append_token_batch(ids, toks), iters, args.repeats)
    bm = fresh()
    results["append_token_batch (Python lists)"] = timed(
        lambda: bm.append_token_batch(id_list, tok_list), iters, args.repeats)

    def per_seq():
        for s in id_list:
            bm.append_tokens(s, 7)
    bm = fresh()
    results["append_tokens x N (one call per sequence)"] = timed(per_seq, iters, args.repeats)
    bm = fresh()
    results["build_batch (decode, NumPy ids)"] = timed(lambda: bm.build_batch(ids), iters,
                                                       args.repeats)

    def read_arrays():
        layout = bm.build_batch(ids)
        return (layout.page_indptr, layout.page_indices, layout.last_page_len,
                layout.slot_mapping)
    results["build_batch + 4 array views"] = timed(read_arrays, iters, args.repeats)
    results["take_cache_ops"] = timed(bm.take_cache_ops, iters, args.repeats)

    def decode_step():
        bm.append_token_batch(ids, toks)
        ops = bm.take_cache_ops()
        layout = bm.build_batch(ids)
        return ops, layout.page_indptr, layout.page_indices, layout.last_page_len, \
            layout.slot_mapping
    bm = fresh()
    results["whole decode step (append_token_batch + take_cache_ops + build_batch + views)"] = \
        timed(decode_step, iters, args.repeats)

    print(f"# {n} sequences of {args.prompt_tokens} tokens (growing by one per append call), "
          f"block size {args.block_size}, {args.repeats} repeats x {iters} calls")
    print(f"{'call':80s} {'median us':>10s} {'min us':>8s} {'ns/seq':>8s}")
    for name, (median_us, min_us) in results.items():
        print(f"{name:80s} {median_us:10.2f} {min_us:8.2f} {1000 * median_us / n:8.1f}")
    bm.check_invariants()


if __name__ == "__main__":
    main()
