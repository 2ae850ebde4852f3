#!/usr/bin/env python3
"""A toy inference engine loop against `pagedkv serve`, in Python.

The server keeps the block tables; this process keeps the K/V, in the server's own shared pools
(mapped through the pool socket as NumPy arrays). Each step the engine

  1. sends one Step: the last step's compute report (mark_computed), frees of finished requests,
     the decode batch (append_batch), admissions (add), and the batch to lay out;
  2. runs the returned CacheOps unless the server already ran them on the shared pools;
  3. writes the step's new K/V through the slot mapping (pagedkv.write_kv);
  4. runs paged attention over the page table (pagedkv.attention_extend) and checks each
     entry's last row against dense fp64 attention over the sequence's own tokens;
  5. "samples" the next tokens; every third request forks a second sample after its prefill.

    pagedkv serve --model examples/toy.json --gpu-blocks 64 --host-blocks 32 --block-size 4 \
        --socket S &
    PYTHONPATH=build/py/python /usr/bin/python3 examples/service_engine.py --target unix:S

It needs a one-group fp32 model (its dense reference is fp64 over fp32 K/V): examples/toy.json.
    -> finished=16 steps=... forks=... cow_copies=... max_abs_err=...
"""

import argparse
import sys

import numpy as np

import pagedkv
import pagedkv.client as kv


def token_kv(tokens, positions, layer, heads, dim):
    """K and V rows [T, heads, dim] that depend only on (token, position, layer)."""
    base = (np.asarray(tokens, np.float64) * 0.37 + np.asarray(positions, np.float64) * 0.011
            + layer * 0.5)[:, None, None]
    h = np.arange(heads, dtype=np.float64)[None, :, None]
    d = np.arange(dim, dtype=np.float64)[None, None, :]
    return (np.sin(base + 0.3 * h + 0.07 * d).astype(np.float32),
            np.cos(base * 1.3 + 0.2 * h - 0.05 * d).astype(np.float32))


def dense_last_row(q_row, tokens, layer, heads, dim):
    """fp64 attention of one query row [Hq, D] over every token of a sequence."""
    k, v = token_kv(tokens, np.arange(len(tokens)), layer, heads, dim)
    group = q_row.shape[0] // heads
    out = np.empty(q_row.shape, np.float64)
    for hq in range(q_row.shape[0]):
        s = k[:, hq // group].astype(np.float64) @ q_row[hq] / np.sqrt(dim)
        p = np.exp(s - s.max())
        out[hq] = (p / p.sum()) @ v[:, hq // group]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-running", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    client = kv.Client(args.target)
    session = client.open_session(client_name="service_engine.py")
    m = session.model
    if m.kv_dtype != "fp32" or len(m.groups) != 1:
        sys.exit(f"needs a one-group fp32 model, got {m.kv_dtype} with {len(m.groups)} groups")
    layers, heads, dim = len(m.groups[0].layers), m.num_kv_heads, m.head_dim
    pools = session.map_pools()
    gpu, host = pools.get(0, "gpu"), pools.get(0, "host")

    waiting = []
    for i in range(args.requests):
        prompt = [int(t) for t in rng.integers(0, 500, size=int(rng.integers(1, 12)))]
        waiting.append({"id": 1 + 2 * i, "tokens": prompt, "prompt_len": len(prompt),
                        "max_new": int(rng.integers(2, 8)), "fork": i % 3 == 0})
    running, to_free, computed = {}, [], {}
    finished = steps = forks = cow_copies = 0
    max_abs_err = 0.0
    while (finished < args.requests or running) and steps < 10000:
        steps += 1
        step = kv.StepBuilder()
        n_ops = 0
        if computed:
            step.mark_computed(list(computed), list(computed.values()))
            n_ops += 1
        if to_free:
            step.free(to_free)
            n_ops += 1
        decode = list(running)
        sampled = [int(t) for t in rng.integers(0, 500, size=len(decode))]
        if decode:
            step.append_batch(decode, sampled)
        admitted = []
        while waiting and len(running) + 2 * len(admitted) < args.max_running:
            admitted.append(waiting.pop(0))
            step.add(admitted[-1]["id"], admitted[-1]["tokens"])
        for seq in decode:
            step.batch(seq, 1)
        for r in admitted:
            step.batch(r["id"], r["prompt_len"])
        result = session.step(step)
        for code, message in result.statuses[:n_ops]:
            if code.value[0] != 0:
                sys.exit(f"mark_computed/free failed: {message}")
        computed, to_free = {}, []
        statuses = result.statuses[n_ops:]
        if decode:
            code, message = statuses.pop(0)
            if code.value[0] != 0:
                sys.exit(f"append_batch failed: {message}")
            for seq, t in zip(decode, sampled):
                running[seq]["tokens"].append(t)
        rejected = []
        for r, (code, message) in zip(admitted, statuses):
            if code.value[0] == 0:
                running[r["id"]] = r
            elif code.name == "RESOURCE_EXHAUSTED":
                rejected.append(r)
            else:
                sys.exit(f"add failed: {message}")
        waiting = rejected + waiting
        order = decode + [r["id"] for r in admitted if r["id"] in running]
        if rejected:  # the batch named requests that were not admitted: lay out the rest again
            again = kv.StepBuilder()
            for seq in order:
                again.batch(seq, 1 if seq in decode else running[seq]["prompt_len"])
            relaid = session.step(again).raise_for_error()
            layouts = relaid.layouts
        else:
            result.raise_for_error()
            layouts = result.layouts
        g = result.ops[0]
        if not result.ops_executed_by_server:
            if len(g["swap_out"]):
                pagedkv.swap_blocks(gpu, host, g["swap_out"])
            if len(g["swap_in"]):
                pagedkv.swap_blocks(host, gpu, g["swap_in"])
            if len(g["copies"]):
                pagedkv.copy_blocks(gpu, g["copies"])
        cow_copies += len(g["copies"])
        if not order:
            continue
        layout = layouts[0]
        for layer in range(layers):
            ks, vs = [], []
            for b, seq in enumerate(order):
                toks = running[seq]["tokens"]
                n_new = layout.query_indptr[b + 1] - layout.query_indptr[b]
                pos = np.arange(len(toks) - n_new, len(toks))
                k, v = token_kv([toks[p] for p in pos], pos, layer, heads, dim)
                ks.append(k)
                vs.append(v)
            pagedkv.write_kv(gpu, layer, layout.slot_mapping, np.concatenate(ks),
                             np.concatenate(vs))
            q = rng.uniform(-1, 1, size=(layout.query_indptr[-1], m.num_q_heads, dim))
            q = q.astype(np.float32)
            out = pagedkv.attention_extend(gpu, layer, q, layout)
            for b, seq in enumerate(order):
                last = layout.query_indptr[b + 1] - 1
                want = dense_last_row(q[last], running[seq]["tokens"], layer, heads, dim)
                max_abs_err = max(max_abs_err, float(np.abs(want - out[last]).max()))
        for seq in order:
            computed[seq] = len(running[seq]["tokens"])
        fork_step = kv.StepBuilder()
        for r in admitted:
            if r["fork"] and r["id"] in running:
                fork_step.fork(r["id"], r["id"] + 1)
                running[r["id"] + 1] = dict(running[r["id"]], id=r["id"] + 1, fork=False,
                                            tokens=list(running[r["id"]]["tokens"]))
                forks += 1
        if len(fork_step.request.ops):
            session.step(fork_step).raise_for_error()
        for seq in [s for s, r in running.items()
                    if len(r["tokens"]) >= r["prompt_len"] + r["max_new"]]:
            to_free.append(seq)
            finished += seq % 2 == 1
            del running[seq]
    if to_free:
        session.step(kv.StepBuilder().free(to_free)).raise_for_error()
    left = session.stats().session.gpu_blocks_used
    session.close()
    print(f"finished={finished} steps={steps} forks={forks} cow_copies={cow_copies} "
          f"blocks_left={left} max_abs_err={max_abs_err:.3g}")
    return 0 if finished == args.requests and left == 0 and max_abs_err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
