"""One engine process of the Python data-through-table test (run by test_service_client.py).

Random operations through `pagedkv serve` (add, decode batches, fork, beam reorder, rewind, swap,
free) with the engine's side done for real on the server's shared pools: CacheOps run unless the
server ran them, new K/V written through the slot mapping with pagedkv.write_kv. Every few steps
each resident sequence is read back through its page table and compared with its own tokens'
K/V; at the end pagedkv.attention_decode on the shared pool is compared with fp64 attention.

    python3 data_engine.py TARGET SEED STEPS   -> "ok verified_tokens=... max_abs_err=..."
"""

import sys

import numpy as np

import pagedkv
import pagedkv.client as kv


def values(tokens, layer, heads, dim):
    """K, V [T, heads, dim] for a sequence: each row depends on the token's whole prefix."""
    h = 0x1234
    prefix = []
    for t in tokens:
        h = (h * 1000003 + int(t) + 1) % (1 << 61)
        prefix.append(h)
    base = (np.asarray(prefix, np.float64) % 100003 * 1e-4 + layer * 0.5)[:, None, None]
    hh = np.arange(heads, dtype=np.float64)[None, :, None]
    d = np.arange(dim, dtype=np.float64)[None, None, :]
    return (np.sin(base + 0.3 * hh + 0.07 * d).astype(np.float32),
            np.cos(base * 1.3 + 0.2 * hh - 0.05 * d).astype(np.float32))


def main(target, seed, steps):
    rng = np.random.default_rng(seed)
    session = kv.Client(target).open_session(client_name=f"py-data-{seed}")
    m = session.model
    layers, heads, dim, bs = len(m.groups[0].layers), m.num_kv_heads, m.head_dim, m.block_size
    pools = session.map_pools()
    gpu, host = pools.get(0, "gpu"), pools.get(0, "host")
    seqs, swapped, next_id = {}, set(), 1
    written, verified = {}, 0

    def write(layout, b, toks, skip):
        n = layout.query_indptr[b + 1] - layout.query_indptr[b]
        slots = layout.slot_mapping[layout.query_indptr[b]:layout.query_indptr[b + 1]].copy()
        slots[:skip] = -1  # tokens in cached pages: already there
        for layer in range(layers):
            k, v = values(toks, layer, heads, dim)
            pagedkv.write_kv(gpu, layer, slots, k[len(toks) - n:], v[len(toks) - n:])

    def verify():
        nonlocal verified
        res = [s for s in seqs if s not in swapped and seqs[s]]
        if not res:
            return
        step = kv.StepBuilder()
        for s in res:
            step.batch(s, 0)
        lay = session.step(step).raise_for_error().layouts[0]
        for b, s in enumerate(res):
            pages = lay.page_indices[lay.page_indptr[b]:lay.page_indptr[b + 1]]
            for layer in range(layers):
                k, v = values(seqs[s], layer, heads, dim)
                for p in range(len(seqs[s])):
                    blk = gpu[pages[p // bs], layer]
                    if not (np.array_equal(blk[0, :, p % bs], k[p]) and
                            np.array_equal(blk[1, :, p % bs], v[p])):
                        sys.exit(f"sequence {s} token {p} layer {layer}: wrong data")
            verified += len(seqs[s])

    for i in range(steps):
        step = kv.StepBuilder()
        main_op = 0
        if written:
            step.mark_computed(list(written), list(written.values()))
            main_op = 1
        res = [s for s in seqs if s not in swapped]
        kind = int(rng.integers(0, 9)) if res else 0
        after = {s: list(t) for s, t in seqs.items()}
        after_swapped = set(swapped)
        batch, is_add = [], False
        if kind <= 1:
            seq, next_id = next_id, next_id + 1
            prompt = ([1, 2, 3, 4, 5, 6, 7] if rng.integers(0, 3) == 0 else []) + \
                [int(t) for t in rng.integers(0, 300, size=int(rng.integers(0, 7)))]
            step.add(seq, prompt)
            after[seq] = prompt
            is_add = True
            if prompt:
                batch.append((seq, len(prompt)))
        elif kind <= 3:
            some = [s for s in res if rng.integers(0, 2)] or res[:1]
            toks = [int(t) for t in rng.integers(0, 300, size=len(some))]
            step.append_batch(some, toks)
            for s, t in zip(some, toks):
                after[s].append(t)
                batch.append((s, 1))
        elif kind == 4:
            parent, child = int(rng.choice(res)), next_id
            next_id += 1
            step.fork(parent, child)
            after[child] = list(seqs[parent])
        elif kind == 5:
            n = len(seqs[int(rng.choice(res))])
            beams = [s for s in res if len(seqs[s]) == n][:3]
            parents = [int(p) for p in rng.integers(0, len(beams), size=len(beams))]
            step.reorder_beams(beams, parents)
            for b, p in zip(beams, parents):
                after[b] = list(seqs[beams[p]])
        elif kind == 6:
            s = int(rng.choice(res))
            n = int(rng.integers(0, len(seqs[s]) + 1))
            step.rewind(s, n)
            after[s] = after[s][:n]
        elif kind == 7 and host is not None:
            if swapped and rng.integers(0, 2):
                s = int(rng.choice(sorted(swapped)))
                step.swap_in([s])
                after_swapped.discard(s)
            else:
                s = int(rng.choice(res))
                step.swap_out([s])
                after_swapped.add(s)
        else:
            s = int(rng.choice(res))
            step.free([s])
            del after[s]
            after_swapped.discard(s)
        for s, n in batch:
            step.batch(s, n)
        r = session.step(step)
        if main_op and r.statuses[0][0].value[0] != 0:
            sys.exit(f"mark_computed failed: {r.statuses[0][1]}")
        written = {}
        code, message = r.statuses[main_op]
        if code.value[0] != 0:
            if code.name != "RESOURCE_EXHAUSTED":
                sys.exit(f"step {i}: unexpected {code.name}: {message}")
            continue
        seqs, swapped = after, after_swapped
        g = r.ops[0]
        if not r.ops_executed_by_server:
            if len(g["swap_out"]):
                pagedkv.swap_blocks(gpu, host, g["swap_out"])
            if len(g["swap_in"]):
                pagedkv.swap_blocks(host, gpu, g["swap_in"])
            if len(g["copies"]):
                pagedkv.copy_blocks(gpu, g["copies"])
        if batch:
            r.raise_for_error()
            skip = r.op_results[main_op].num_cached_tokens if is_add else 0
            for b, (s, _) in enumerate(batch):
                write(r.layouts[0], b, seqs[s], skip)
                written[s] = len(seqs[s])
        if i % 10 == 9:
            verify()
    verify()
    # Decode attention on the shared pool against fp64.
    live = [s for s in seqs if s not in swapped and seqs[s]]
    max_err = 0.0
    if live:
        step = kv.StepBuilder()
        for s in live:
            step.batch(s, 0)
        lay = session.step(step).raise_for_error().layouts[0]
        for layer in range(layers):
            q = rng.uniform(-1, 1, size=(len(live), m.num_q_heads, dim)).astype(np.float32)
            out = pagedkv.attention_decode(gpu, layer, q, lay)
            for b, s in enumerate(live):
                k, v = values(seqs[s], layer, heads, dim)
                group = m.num_q_heads // heads
                for hq in range(m.num_q_heads):
                    sc = k[:, hq // group].astype(np.float64) @ q[b, hq] / np.sqrt(dim)
                    p = np.exp(sc - sc.max())
                    want = (p / p.sum()) @ v[:, hq // group]
                    max_err = max(max_err, float(np.abs(want - out[b, hq]).max()))
    if seqs:
        session.step(kv.StepBuilder().free(list(seqs))).raise_for_error()
    left = session.stats().session
    if left.gpu_blocks_used or left.host_blocks_used:
        sys.exit("blocks left after freeing everything")
    session.close()
    print(f"ok verified_tokens={verified} max_abs_err={max_err:.3g}")
    return 0 if max_err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
