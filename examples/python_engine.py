#!/usr/bin/env python3
"""A toy inference engine loop in Python on top of pagedkv.

The C++ Scheduler (continuous batching, chunked prefill, parallel sampling, beam search,
preemption by swap or recompute) decides each step; its paged policy's BlockManager maps
sequences to pages. The "model" is a stand-in: K/V rows derived from (token id, position, layer)
and random queries. Each step the engine

  1. executes the step's CacheOps (swap out, swap in, copy-on-write) on its NumPy pools,
  2. writes the step's new K/V through the batch's slot_mapping (CPU WriteKV),
  3. runs paged attention (CPU, extend form: prefill chunks and decodes in one batch),
  4. checks every entry's output against dense NumPy attention over the sequence's tokens,
  5. samples tokens (random) and, for beam requests, random parent choices; complete_step then
     reports the computed tokens, so full computed pages become prefix-cache hits (half the
     prompts share a prefix, and their hits skip that part of the prefill).

The policy's BlockManager is metadata only (a virtual GPU tier), so the engine owns the K/V
memory: NumPy arrays of [num_blocks, layers, 2, kv_heads, block_size, head_dim] for the GPU and
host tiers, indexed by the manager's block ids.

    PYTHONPATH=build/py/python /usr/bin/python3 examples/python_engine.py --requests 24
"""

import argparse
import sys

import numpy as np

import pagedkv

NUM_LAYERS, NUM_Q_HEADS, NUM_KV_HEADS, HEAD_DIM = 2, 4, 2, 16


def token_kv(tokens, layer):
    """K and V rows [T, kv_heads, head_dim] that depend only on (token, position, layer)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    pos = np.arange(len(tokens), dtype=np.float64)
    h = np.arange(NUM_KV_HEADS, dtype=np.float64)[None, :, None]
    d = np.arange(HEAD_DIM, dtype=np.float64)[None, None, :]
    base = (tokens * 0.37 + pos * 0.011 + layer * 0.5)[:, None, None]
    k = np.sin(base + 0.3 * h + 0.07 * d)
    v = np.cos(base * 1.3 + 0.2 * h - 0.05 * d)
    return k.astype(np.float32), v.astype(np.float32)


def dense_causal_attention(q, k, v):
    """q [Tq, Hq, D] are the last Tq tokens of k/v [L, Hkv, D]; causal; float64 reference."""
    tq, hq, d = q.shape
    length = k.shape[0]
    group = hq // k.shape[1]
    out = np.empty(q.shape, dtype=np.float64)
    for i in range(tq):
        visible = length - tq + i + 1
        for head in range(hq):
            s = k[:visible, head // group].astype(np.float64) @ q[i, head] / np.sqrt(d)
            p = np.exp(s - s.max())
            out[i, head] = (p / p.sum()) @ v[:visible, head // group]
    return out


class ToyEngine:
    def __init__(self, args):
        self.rng = np.random.default_rng(args.seed)
        self.spec = pagedkv.ModelSpec(name="toy", num_layers=NUM_LAYERS, num_q_heads=NUM_Q_HEADS,
                                      num_kv_heads=NUM_KV_HEADS, head_dim=HEAD_DIM,
                                      kv_dtype="fp32")
        self.policy = pagedkv.make_kv_cache_policy(pagedkv.PolicyConfig(
            model=self.spec, block_size_tokens=args.block_size,
            capacity_tokens=args.gpu_blocks * args.block_size,
            host_capacity_tokens=args.host_blocks * args.block_size,
            max_model_len=256, max_new_tokens=args.max_new_tokens, watermark=0.0,
            enable_prefix_caching=True))
        self.bm = self.policy.block_manager()
        self.sched = pagedkv.Scheduler(pagedkv.SchedulerConfig(
            max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_batched_tokens,
            enable_chunked_prefill=True, preemption_mode=args.preemption), self.policy)
        info = self.bm.group_info(0)
        shape = (NUM_LAYERS, 2, NUM_KV_HEADS, args.block_size, HEAD_DIM)
        self.gpu = np.zeros((info.gpu_num_blocks,) + shape, np.float32)
        self.host = np.zeros((max(info.host_num_blocks, 1),) + shape, np.float32)
        self.workers = pagedkv.CpuWorkerPool(0)
        self.beam_requests = set()
        self.max_err = 0.0
        self.counts = dict(steps=0, prefill_tokens=0, decode_tokens=0, cached_prompt_tokens=0,
                           swap_out=0, swap_in=0, copies=0, preempted=0, finished=0, rejected=0,
                           entries=0)
        self.shared_prefix = [int(t) for t in self.rng.integers(1, 1000, size=20)]

    def add_requests(self, n):
        for r in range(n):
            kind = r % 4
            prompt = [int(t) for t in self.rng.integers(1, 1000, size=int(self.rng.integers(3, 40)))]
            if r % 2 == 0:
                prompt = self.shared_prefix + prompt
            beams = 3 if kind == 3 else 1
            samples = 2 if kind == 2 else 1
            if beams > 1:
                self.beam_requests.add(r)
            self.sched.add_request(pagedkv.SchedulerRequest(
                r, prompt, max_output_tokens=int(self.rng.integers(2, 24)),
                num_samples=samples, beam_width=beams))

    def execute_cache_ops(self, ops):
        g = ops.groups[0]
        if len(g.swap_out):
            pagedkv.swap_blocks(self.gpu, self.host, g.swap_out)
        if len(g.swap_in):
            pagedkv.swap_blocks(self.host, self.gpu, g.swap_in)
        if len(g.copies):
            pagedkv.copy_blocks(self.gpu, g.copies)
        self.counts["swap_out"] += len(g.swap_out)
        self.counts["swap_in"] += len(g.swap_in)
        self.counts["copies"] += len(g.copies)

    def step(self):
        out = self.sched.step()
        self.counts["steps"] += 1
        self.counts["preempted"] += len(out.preempted_seqs)
        self.counts["rejected"] += len(out.rejected_requests)
        self.execute_cache_ops(out.cache_ops)
        entries = out.scheduled
        if not entries:
            return out
        seq_ids = np.array([e.seq_id for e in entries], dtype=np.uint64)
        num_q = np.array([e.num_query_tokens for e in entries], dtype=np.int32)
        num_ctx = np.array([e.num_context_tokens for e in entries], dtype=np.int32) + num_q
        layout = self.bm.build_batch(seq_ids, num_new_tokens=num_q, num_context_tokens=num_ctx)
        tokens = [self.sched.sequence_tokens(e.seq_id)[:c] for e, c in zip(entries, num_ctx)]
        q = self.rng.standard_normal((int(num_q.sum()), NUM_Q_HEADS, HEAD_DIM)).astype(np.float32)
        for layer in range(NUM_LAYERS):
            kv = [token_kv(t, layer) for t in tokens]
            new_k = np.concatenate([k[-n:] for (k, _), n in zip(kv, num_q)])
            new_v = np.concatenate([v[-n:] for (_, v), n in zip(kv, num_q)])
            pagedkv.write_kv(self.gpu, layer, layout.slot_mapping, new_k, new_v)
            o = pagedkv.attention_extend(self.gpu, layer, q, layout, cpu_pool=self.workers)
            for b, (k, v) in enumerate(kv):
                q0, q1 = layout.query_indptr[b], layout.query_indptr[b + 1]
                want = dense_causal_attention(q[q0:q1], k, v)
                self.max_err = max(self.max_err, float(np.abs(o[q0:q1] - want).max()))
        self.counts["entries"] += len(entries)
        self.counts["prefill_tokens"] += out.num_prefill_tokens
        self.counts["decode_tokens"] += out.num_decode_tokens
        self.counts["cached_prompt_tokens"] += out.num_cached_prompt_tokens
        # Sample: num_samples tokens per entry; beam requests pick random parents.
        sampled = [int(t) for t in self.rng.integers(1, 1000, size=sum(e.num_samples
                                                                       for e in entries))]
        beams = {}
        for e in entries:
            if e.request_id in self.beam_requests and not e.is_prefill:
                beams.setdefault(e.request_id, 0)
                beams[e.request_id] += 1
        choice = {r: [int(p) for p in self.rng.integers(0, n, size=n)] for r, n in beams.items()}
        done = self.sched.complete_step(out, sampled, beams=choice)
        self.counts["finished"] += len(done.finished_requests)
        return out

    def run(self, max_steps):
        while self.sched.has_work() and self.counts["steps"] < max_steps:
            self.step()
            if self.max_err > 1e-4:
                raise AssertionError(f"step {self.counts['steps']}: paged attention differs from "
                                     f"dense by {self.max_err:.3g}")
        self.policy.check_invariants()
        self.sched.check_invariants()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=24)
    p.add_argument("--block-size", type=int, default=4)
    p.add_argument("--gpu-blocks", type=int, default=40, help="small, to force preemption")
    p.add_argument("--host-blocks", type=int, default=64)
    p.add_argument("--max-num-seqs", type=int, default=16)
    p.add_argument("--max-batched-tokens", type=int, default=48)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--preemption", choices=["swap", "recompute"], default="swap")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    pagedkv.set_log_level("error")
    engine = ToyEngine(args)
    engine.add_requests(args.requests)
    engine.run(args.max_steps)
    c = engine.counts
    print(f"steps={c['steps']} entries={c['entries']} prefill_tokens={c['prefill_tokens']} "
          f"decode_tokens={c['decode_tokens']} cached_prompt_tokens={c['cached_prompt_tokens']} "
          f"finished={c['finished']} rejected={c['rejected']} "
          f"preempted_seqs={c['preempted']} swap_out_blocks={c['swap_out']} "
          f"swap_in_blocks={c['swap_in']} cow_copies={c['copies']} "
          f"max_abs_err={engine.max_err:.2e}")
    if engine.sched.has_work():
        print("stopped at --max-steps with work left", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
