"""Speculative decoding on pagedkv: a small draft model proposes k tokens per request, the target
model checks them all in one extend step, and the rejected tokens are rewound.

pagedkv's Scheduler has no speculative mode (its sequences grow by one token per decode step), so
this path drives two BlockManagers directly, one per model, each with real pools (the target's
and the draft's K/V have different shapes). Greedy decoding only; the output is exactly what the
target alone would generate greedily (the tests check this against the dense reference).

One round, for every running request (batched: one forward pass per phase for all of them):

  state: the target has computed c tokens (prompt + output so far, except the newest output
         token x); the draft has computed its own prefix and holds `pending` tokens it has not
         computed yet (x, and after a fully accepted round also the last proposal).
  1. draft: j = 1..k: append_tokens(pending or [d_{j-1}]), build_batch, forward, d_j = argmax;
     mark_computed. (k is cut so that no request generates past max_new_tokens.)
  2. verify: the target appends [x, d_1..d_k] (k + 1 slots), one extend forward pass gives the
     target's choice g_0..g_k after each of them; a = the number of leading d_j == g_{j-1}.
     The round outputs d_1..d_a and g_a (a + 1 tokens, at least one).
  3. rewind: the target keeps c + a + 1 tokens (x, d_1..d_a): rewind() drops d_{a+1}..d_k,
     releasing whole pages past the end (a shared last page is left alone; the next append copies
     it), then mark_computed(c + a + 1): only now, so no page holding a rejected token is ever
     published to the prefix cache. The draft keeps what it computed up to d_a (rewind), and
     g_a (plus d_k when a == k) becomes its pending input.

Memory: admission reserves each request's worst case (prompt + max_new_tokens + k tokens) in each
manager, so a round never runs out of blocks and nothing is preempted on this path. Prefix
caching works as in the Scheduler path: both managers hand out computed prompt pages, and
mark_computed publishes pages after each forward pass; rewound pages stay published with their
old content until an append writes into them (BlockManager semantics).
"""

import collections
import dataclasses
import math
import time

import numpy as np
import torch

import pagedkv

from .engine import RequestOutput, _DTYPE_LABEL, validate_prompt
from .model import LlamaModel
from .paged_kv import gpu_tier_for, make_paged_kv


def _manager(model, block_size, num_blocks, prefix_caching, device, kv_dtype):
    spec = model.config.kv_spec(kv_dtype or _DTYPE_LABEL[model.dtype])
    cfg = pagedkv.CacheConfig(block_size_tokens=block_size, gpu_num_blocks=num_blocks,
                              gpu_tier=gpu_tier_for(device), watermark=0.0,
                              enable_prefix_caching=prefix_caching)
    return pagedkv.BlockManager(spec, cfg), spec


class _Side:
    """One model with its BlockManager and pools."""

    def __init__(self, model, bm, spec, device, num_threads, kernels):
        self.model = model
        self.bm = bm
        self.spec = spec
        self.kv = make_paged_kv(bm, spec, device, num_threads, kernels)
        self.forwards = 0

    def forward(self, seq_ids, chunks, computed, all_rows, mark=True):
        """Appends nothing: the slots of `chunks` (new tokens per sequence) exist already.
        Runs them after `computed` tokens per sequence; logits of every row (all_rows) or of
        each sequence's last row; then (mark) reports the sequences computed. Returns (logits,
        the first row of each sequence)."""
        ops = self.bm.take_cache_ops()
        if ops:
            self.kv.execute_cache_ops(ops)
        n = len(seq_ids)
        ids = np.asarray(seq_ids, dtype=np.uint64)
        num_q = np.fromiter((len(c) for c in chunks), np.int32, n)
        ctx = np.asarray(computed, dtype=np.int32)
        layout = self.bm.build_batch(ids, num_new_tokens=num_q, num_context_tokens=ctx + num_q)
        dev = self.model.device
        tokens = torch.tensor([t for c in chunks for t in c], dtype=torch.int64, device=dev)
        positions = torch.from_numpy(np.concatenate(
            [np.arange(c, c + q, dtype=np.int64) for c, q in zip(ctx, num_q)])).to(dev)
        starts = np.concatenate([[0], np.cumsum(num_q)[:-1]])
        rows = None if all_rows else torch.from_numpy(
            (starts + num_q - 1).astype(np.int64)).to(dev)
        self.kv.begin(layout)
        logits = self.model.forward(tokens, positions, self.kv.attend, rows).cpu()
        if mark:
            self.bm.mark_computed_batch(ids, (ctx + num_q).astype(np.int64))
        self.forwards += 1
        return logits, starts


@dataclasses.dataclass
class _Seq:
    request: object
    prompt: np.ndarray
    output: list
    target_computed: int
    draft_computed: int
    pending: list  # tokens the draft has not computed yet
    logits: list


class SpeculativeDecoder:
    """Greedy speculative decoding of a batch of requests (see the module docstring).

        spec = SpeculativeDecoder(target, target.truncated(1), num_speculative_tokens=4)
        outputs = spec.generate([Request(1, prompt, max_new_tokens=32)])
        spec.stats  # rounds, proposed, accepted, ...
    """

    def __init__(self, target, draft, *, num_speculative_tokens=4, block_size=16,
                 num_blocks=256, max_num_seqs=16, enable_prefix_caching=True, device="cpu",
                 kv_dtype=None, num_threads=1, kernels="auto", record_logits=False):
        for name, m in (("target", target), ("draft", draft)):
            if not isinstance(m, LlamaModel):
                raise TypeError(f"{name} must be a LlamaModel, got {type(m).__name__}")
        if draft.config.vocab_size != target.config.vocab_size:
            raise ValueError(f"the draft's vocabulary ({draft.config.vocab_size}) must be the "
                             f"target's ({target.config.vocab_size})")
        if not isinstance(num_speculative_tokens, int) or num_speculative_tokens < 1:
            raise ValueError(f"num_speculative_tokens must be an int >= 1, got "
                             f"{num_speculative_tokens!r}")
        for name, value in (("block_size", block_size), ("num_blocks", num_blocks),
                            ("max_num_seqs", max_num_seqs)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.k = num_speculative_tokens
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.max_num_seqs = max_num_seqs
        self.record_logits = record_logits
        sides = []
        for m in (target, draft):
            bm, spec = _manager(m, block_size, num_blocks, enable_prefix_caching, device,
                                kv_dtype)
            sides.append(_Side(m, bm, spec, device, num_threads, kernels))
        self.target, self.draft = sides
        self._next_seq = 1
        # rounds: draft-and-verify rounds (each batches every running request); request_rounds:
        # the requests verified over all rounds (round_tokens / request_rounds is the tokens one
        # target pass yields per request: 1 + accepted proposals).
        self.stats = dict(rounds=0, request_rounds=0, round_tokens=0, proposed=0, accepted=0,
                          generated=0, prefix_hit_tokens=0, rewound_tokens=0)
        self.timing = dict(total_s=0.0)

    # ---- admission ------------------------------------------------------------------------------
    def _pages(self, seq):
        return math.ceil((len(seq.prompt) + seq.request.max_new_tokens + self.k) /
                         self.block_size) + 1

    def generate(self, requests):
        """{request_id: RequestOutput} for greedy requests (n = 1, beam_width = 1)."""
        t_start = time.perf_counter()
        waiting = collections.deque()
        seen = set()
        for r in requests:
            where = f"request {r.request_id}"
            if r.request_id in seen:
                raise ValueError(f"{where} is listed twice")
            seen.add(r.request_id)
            if r.n != 1 or r.beam_width != 1 or not r.sampling.greedy:
                raise ValueError(f"{where}: speculative decoding here is greedy with n = 1 and "
                                 f"beam_width = 1")
            if not isinstance(r.max_new_tokens, int) or r.max_new_tokens < 1:
                raise ValueError(f"{where}: max_new_tokens must be an int >= 1")
            prompt = validate_prompt(r.prompt, self.target.model.config.vocab_size, where)
            waiting.append(_Seq(r, prompt, [], 0, 0, [], []))
        outputs, running, reserved = {}, {}, 0
        while waiting or running:
            admitted = []
            while waiting and len(running) < self.max_num_seqs:
                seq = waiting[0]
                need = self._pages(seq)
                if need > self.num_blocks:
                    raise ValueError(f"request {seq.request.request_id} needs {need} pages of "
                                     f"{self.block_size} tokens, the pools hold "
                                     f"{self.num_blocks}; raise num_blocks")
                if reserved + need > self.num_blocks:
                    break
                waiting.popleft()
                reserved += need
                sid = self._next_seq
                self._next_seq += 1
                running[sid] = seq
                admitted.append(sid)
            if admitted:
                self._prefill(admitted, running)
            for sid in [s for s, q in running.items()
                        if len(q.output) >= q.request.max_new_tokens]:
                seq = running.pop(sid)
                self._finish(sid, seq, outputs)
                reserved -= self._pages(seq)
            if running:
                self._round(running)
                for sid in [s for s, q in running.items()
                            if len(q.output) >= q.request.max_new_tokens]:
                    seq = running.pop(sid)
                    self._finish(sid, seq, outputs)
                    reserved -= self._pages(seq)
        self.timing["total_s"] += time.perf_counter() - t_start
        return outputs

    def _finish(self, sid, seq, outputs):
        self.target.bm.free(sid)
        self.draft.bm.free(sid)
        self.stats["generated"] += len(seq.output)
        outputs[seq.request.request_id] = RequestOutput(
            request_id=seq.request.request_id, prompt=seq.prompt.tolist(), outputs=[seq.output],
            logits=seq.logits if self.record_logits else None)

    def _prefill(self, sids, running):
        """Both models compute each new prompt past its prefix-cache hit; the target's logits
        at the last prompt token give the first output token."""
        for side, is_target in ((self.target, True), (self.draft, False)):
            chunks, computed = [], []
            for sid in sids:
                seq = running[sid]
                info = side.bm.add_sequence(sid, seq.prompt)
                hit = min(info.num_cached_tokens, len(seq.prompt) - 1)
                if is_target:
                    self.stats["prefix_hit_tokens"] += hit
                chunks.append(seq.prompt[hit:].tolist())
                computed.append(hit)
            logits, _ = side.forward(sids, chunks, computed, all_rows=False)
            for i, sid in enumerate(sids):
                seq = running[sid]
                if is_target:
                    seq.target_computed = len(seq.prompt)
                    token = int(torch.argmax(logits[i]))
                    self._record(seq, len(seq.prompt), logits[i])
                    seq.output.append(token)
                    seq.pending = [token]
                else:
                    seq.draft_computed = len(seq.prompt)

    def _record(self, seq, position, row):
        if self.record_logits:
            seq.logits.append((0, position, row.numpy().copy()))

    def _round(self, running):
        sids = list(running)
        seqs = [running[s] for s in sids]
        # Proposals per request: never past max_new_tokens (the round adds up to k + 1 tokens).
        ks = [min(self.k, q.request.max_new_tokens - len(q.output) - 1) for q in seqs]
        proposals = [[] for _ in seqs]
        drafted = [0] * len(seqs)  # tokens the draft appended this round
        for j in range(max(ks)):
            idx = [i for i, k in enumerate(ks) if k > j]
            chunks = [seqs[i].pending if j == 0 else [proposals[i][-1]] for i in idx]
            computed = []
            for i, chunk in zip(idx, chunks):
                self.draft.bm.append_tokens(sids[i], np.asarray(chunk, dtype=np.int32))
                computed.append(seqs[i].draft_computed + drafted[i])
                drafted[i] += len(chunk)
            logits, _ = self.draft.forward([sids[i] for i in idx], chunks, computed,
                                           all_rows=False)
            for row, i in enumerate(idx):
                proposals[i].append(int(torch.argmax(logits[row])))
        # Verify: the target runs x and every proposal in one extend pass.
        chunks = [[q.output[-1]] + p for q, p in zip(seqs, proposals)]
        for sid, chunk in zip(sids, chunks):
            self.target.bm.append_tokens(sid, np.asarray(chunk, dtype=np.int32))
        # Not marked computed yet: the rejected proposals are rewound first, so the prefix cache
        # never publishes a page holding them.
        logits, starts = self.target.forward(sids, chunks, [q.target_computed for q in seqs],
                                             all_rows=True, mark=False)
        self.stats["rounds"] += 1
        self.stats["request_rounds"] += len(sids)
        for i, (sid, seq) in enumerate(zip(sids, seqs)):
            k, p = ks[i], proposals[i]
            choice = torch.argmax(logits[starts[i]:starts[i] + k + 1], dim=-1).tolist()
            a = 0
            while a < k and p[a] == choice[a]:
                a += 1
            c = seq.target_computed
            for j in range(a + 1):
                self._record(seq, c + j + 1, logits[starts[i] + j])
            new = p[:a] + [int(choice[a])]
            self.stats["proposed"] += k
            self.stats["accepted"] += a
            if a < k:  # drop the rejected proposals' slots (their K/V were written)
                self.target.bm.rewind(sid, c + a + 1)
                self.stats["rewound_tokens"] += k - a
            self.target.bm.mark_computed(sid, c + a + 1)
            seq.target_computed = c + a + 1
            seq.output.extend(new)
            self.stats["round_tokens"] += len(new)
            # The draft computed pending + d_1..d_{k-1}; it keeps them up to d_a.
            base = seq.draft_computed
            if k == 0:
                seq.pending = seq.pending + new
            elif a < k:
                keep = base + len(seq.pending) + a
                self.draft.bm.rewind(sid, keep)
                seq.draft_computed = keep
                seq.pending = [new[-1]]
            else:
                seq.draft_computed = base + drafted[i]
                seq.pending = [p[-1], new[-1]]

    # ---- state --------------------------------------------------------------------------------
    def check_invariants(self):
        self.target.bm.check_invariants()
        self.draft.bm.check_invariants()

    def acceptance_rate(self):
        return self.stats["accepted"] / max(self.stats["proposed"], 1)
