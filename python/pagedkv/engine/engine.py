"""Engine: continuous batching of a LlamaModel on pagedkv, driven by pagedkv.Scheduler.

One step (Engine.step), in the order of DESIGN.md's serving step:

 1. out = scheduler.step(): the batch (prefill chunks and decodes within the token budget),
    admissions (prefix-cache hits skip their computed pages), preemptions (swap or recompute);
    the paged policy's BlockManager has already appended every scheduled token's slot.
 2. execute out.cache_ops on the pools: swap_out, swap_in, copy-on-write copies.
 3. layout = bm.build_batch(seq_ids, num_new_tokens, num_context_tokens): the page table in
    CSR form and the slot of every new token.
 4. the model runs over the flat batch; each layer writes its new K/V with write_kv through
    layout.slot_mapping and attends through the page table (paged_kv.py).
 5. tokens are chosen from the logits of the entries that sample (greedy, seeded sampling, or a
    beam step with each new beam's parent), and scheduler.complete_step(out, tokens, beams)
    appends them, forks n > 1 / beams at the end of a prompt, reorders beams, reports the
    computed tokens to the BlockManager (mark_computed: commit on compute, so prefix-cache
    hits only ever hand out pages whose K/V this engine wrote) and frees finished requests.

The policy's BlockManager owns real memory (PolicyConfig.gpu_tier HOST on the CPU, GPU on
CUDA), so K/V live in pagedkv's pools.
"""

import dataclasses
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

import pagedkv

from .model import LlamaModel
from .paged_kv import gpu_tier_for, make_paged_kv
from .sampling import GREEDY, SamplingParams, first_beams, next_beams, select_token


@dataclasses.dataclass
class Request:
    """A generation request. n > 1: parallel samples (fork after the prompt); beam_width > 1:
    beam search (greedy scores, fork after the prompt, reorder every step). Exactly
    max_new_tokens tokens are generated per sequence (no end-of-sequence token)."""

    request_id: int
    prompt: Sequence[int]
    max_new_tokens: int = 16
    n: int = 1
    beam_width: int = 1
    sampling: SamplingParams = GREEDY


@dataclasses.dataclass
class RequestOutput:
    request_id: int
    prompt: List[int]
    # n samples, or the beams best first, or the one greedy/sampled sequence.
    outputs: List[List[int]]
    scores: Optional[List[float]] = None  # beam search: cumulative log-probs, best first
    num_preemptions: int = 0
    rejected: bool = False  # the scheduler could never fit it (see EngineConfig)
    # With EngineConfig.record_logits: (sample index, position of the chosen token, logits
    # [vocab]) for every choice, and for beam search the logits [beams, vocab] of every step.
    logits: Optional[list] = None
    beam_logits: Optional[list] = None


@dataclasses.dataclass
class EngineConfig:
    """Memory and batching of an Engine. num_host_blocks > 0 gives swap space (preemption
    'swap'); without it the scheduler recomputes preempted requests."""

    block_size: int = 16
    num_gpu_blocks: int = 256
    num_host_blocks: int = 0
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 256
    preemption: str = "recompute"  # or "swap"
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    watermark: float = 0.0
    max_model_len: int = 4096
    device: str = "cpu"
    kv_dtype: Optional[str] = None  # default: the model's dtype (fp32 / fp16 / bf16)
    num_threads: int = 1  # CPU attention threads (CpuWorkerPool)
    # 'auto': NumPy-array kernels on the CPU, pagedkv.raw (CUDA) on a GPU; 'raw' runs the
    # raw-address path on the CPU too (paged_kv.RawPagedKV), to test it without a GPU.
    kernels: str = "auto"
    record_logits: bool = False  # keep every logits row a token was chosen from (tests)
    check_tokens: bool = False  # cross-check the engine's token bookkeeping every step (tests)

    def validate(self):
        for field in ("block_size", "num_gpu_blocks", "max_num_seqs", "max_num_batched_tokens",
                      "max_model_len", "num_threads"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EngineConfig.{field} must be an int >= 1, got {value!r}")
        if not isinstance(self.num_host_blocks, int) or self.num_host_blocks < 0:
            raise ValueError(f"EngineConfig.num_host_blocks must be an int >= 0, got "
                             f"{self.num_host_blocks!r}")
        if self.preemption not in ("swap", "recompute"):
            raise ValueError(f"EngineConfig.preemption must be 'swap' or 'recompute', got "
                             f"{self.preemption!r}")
        if self.preemption == "swap" and self.num_host_blocks == 0:
            raise ValueError("EngineConfig: preemption 'swap' needs swap space; set "
                             "num_host_blocks > 0 or use preemption='recompute'")
        if not 0 <= self.watermark < 1:
            raise ValueError(f"EngineConfig.watermark must be in [0, 1), got {self.watermark}")


_DTYPE_LABEL = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def validate_prompt(prompt, vocab_size, where):
    """The prompt as an int32 array; ValueError for an empty prompt or an id outside the
    vocabulary, TypeError for non-integers."""
    try:
        ids = np.asarray(prompt)
    except Exception as e:  # noqa: BLE001 (anything array-like)
        raise TypeError(f"{where}: prompt must be a sequence of token ids ({e})") from None
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"{where}: prompt must be a non-empty 1-D sequence of token ids, got "
                         f"shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{where}: token ids must be integers, got dtype {ids.dtype}")
    bad = np.flatnonzero((ids < 0) | (ids >= vocab_size))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{where}: token id {int(ids[i])} at position {i} is outside the "
                         f"vocabulary [0, {vocab_size})")
    return ids.astype(np.int32)


class _RequestState:
    __slots__ = ("request", "prompt", "first_seq", "width", "beams", "generated", "scores",
                 "logits", "beam_logits")

    def __init__(self, request, prompt, first_seq):
        self.request = request
        self.prompt = prompt
        self.first_seq = first_seq
        self.beams = request.beam_width > 1
        self.width = max(request.n, request.beam_width)
        self.generated = [[] for _ in range(self.width)]
        self.scores = None
        self.logits = []
        self.beam_logits = []


class Engine:
    """Continuous batching over pagedkv.Scheduler; see the module docstring.

        engine = Engine(LlamaModel.random(ModelConfig()), EngineConfig(num_gpu_blocks=64))
        engine.add_request(Request(1, [5, 6, 7], max_new_tokens=8))
        outputs = engine.run()          # {request_id: RequestOutput}
    """

    def __init__(self, model, config=None):
        if not isinstance(model, LlamaModel):
            raise TypeError(f"model must be a LlamaModel, got {type(model).__name__}")
        config = config or EngineConfig()
        config.validate()
        if torch.device(config.device).type != model.device.type:
            raise ValueError(f"EngineConfig.device {config.device!r} differs from the model's "
                             f"device {model.device}; move the model with model.to(device)")
        self.model = model
        self.config = config
        kv_dtype = config.kv_dtype or _DTYPE_LABEL[model.dtype]
        self.spec = model.config.kv_spec(kv_dtype)
        self.policy = pagedkv.make_kv_cache_policy(pagedkv.PolicyConfig(
            model=self.spec, block_size_tokens=config.block_size,
            capacity_tokens=config.num_gpu_blocks * config.block_size,
            host_capacity_tokens=config.num_host_blocks * config.block_size,
            gpu_tier=gpu_tier_for(config.device), max_model_len=config.max_model_len,
            max_new_tokens=config.max_model_len, watermark=config.watermark,
            enable_prefix_caching=config.enable_prefix_caching))
        self.bm = self.policy.block_manager()
        self.scheduler = pagedkv.Scheduler(pagedkv.SchedulerConfig(
            max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=config.max_num_batched_tokens,
            enable_chunked_prefill=config.enable_chunked_prefill,
            preemption_mode=config.preemption), self.policy)
        self.kv = make_paged_kv(self.bm, self.spec, config.device, config.num_threads,
                                config.kernels)
        self._states: Dict[int, _RequestState] = {}
        self._last: Dict[int, int] = {}  # seq id -> its newest token (the next decode input)
        self.outputs: Dict[int, RequestOutput] = {}
        self.counts = dict(steps=0, prefill_tokens=0, decode_tokens=0, generated_tokens=0,
                           cached_prompt_tokens=0, prompt_tokens=0, chunked_prefills=0,
                           forks=0, beam_reorders=0, preempted_seqs=0, rejected=0)
        # Seconds: schedule (Scheduler.step), layout (build_batch and the batch's inputs),
        # model (forward, kernels included), sample, complete (Scheduler.complete_step);
        # decode_steps_s / decode_step_tokens: steps without any prefill; decode_attention_s
        # their time in pagedkv's write_kv and attention kernels, decode_bookkeeping_s in
        # pagedkv's bookkeeping (schedule + layout + complete of those steps); decode_steps_cpu_s
        # is their process CPU time (less disturbed by other load than wall time).
        self.timing = dict(schedule_s=0.0, layout_s=0.0, model_s=0.0, sample_s=0.0,
                           complete_s=0.0, step_s=0.0, decode_steps_s=0.0,
                           decode_attention_s=0.0, decode_bookkeeping_s=0.0,
                           decode_steps_cpu_s=0.0)
        self.counts["decode_step_tokens"] = 0

    # ---- requests -----------------------------------------------------------------------------
    def add_request(self, request):
        """Queues a request (FCFS). ValueError/TypeError for a malformed one."""
        if not isinstance(request, Request):
            raise TypeError(f"add_request takes a Request, got {type(request).__name__}")
        rid = request.request_id
        where = f"request {rid}"
        if not isinstance(rid, (int, np.integer)) or rid < 0:
            raise ValueError(f"request_id must be an int >= 0, got {rid!r}")
        if rid in self._states or rid in self.outputs:
            raise ValueError(f"{where} was already added; request ids must be unique")
        prompt = validate_prompt(request.prompt, self.model.config.vocab_size, where)
        for field in ("max_new_tokens", "n", "beam_width"):
            value = getattr(request, field)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{where}: {field} must be an int >= 1, got {value!r}")
        if request.n > 1 and request.beam_width > 1:
            raise ValueError(f"{where}: use n > 1 (parallel sampling) or beam_width > 1 (beam "
                             f"search), not both")
        if request.beam_width > 1 and not request.sampling.greedy:
            raise ValueError(f"{where}: beam search scores are deterministic; use the default "
                             f"greedy SamplingParams with beam_width > 1")
        if request.beam_width > self.model.config.vocab_size:
            raise ValueError(f"{where}: beam_width {request.beam_width} exceeds the vocabulary")
        self.scheduler.add_request(pagedkv.SchedulerRequest(
            int(rid), prompt.tolist(), max_output_tokens=int(request.max_new_tokens),
            num_samples=int(request.n), beam_width=int(request.beam_width)))
        first_seq = self.scheduler.request_seq_ids(int(rid))[0]
        self._states[int(rid)] = _RequestState(request, prompt, first_seq)
        self.counts["prompt_tokens"] += len(prompt)

    def has_work(self):
        return self.scheduler.has_work()

    def run(self, max_steps=1_000_000):
        """Steps until every request finished (or was rejected); returns self.outputs."""
        idle = 0
        while self.scheduler.has_work():
            if self.counts["steps"] >= max_steps:
                raise RuntimeError(f"engine: {max_steps} steps without finishing; "
                                   f"{self.scheduler.num_running} running, "
                                   f"{self.scheduler.num_waiting} waiting")
            scheduled = self.step()
            idle = 0 if scheduled else idle + 1
            if idle > 100:
                raise RuntimeError("engine: 100 steps in a row scheduled nothing; the pool is "
                                   "too small for the waiting requests")
        return self.outputs

    # ---- one step -----------------------------------------------------------------------------
    def step(self):
        """Runs one serving step; returns the number of scheduled entries."""
        t_step = time.perf_counter()
        cpu_step = time.process_time()
        attention_before = self.kv.timing["attention_s"]
        book_before = self._bookkeeping_s()
        out = self.scheduler.step()
        t = time.perf_counter()
        self.timing["schedule_s"] += t - t_step
        self.counts["steps"] += 1
        self.counts["preempted_seqs"] += len(out.preempted_seqs)
        for rid in out.rejected_requests:
            self._finish(rid, rejected=True)
        self.kv.execute_cache_ops(out.cache_ops)
        entries = out.scheduled
        tokens, beams = [], {}
        if entries:
            logits, rows_of = self._forward(entries)
            t = time.perf_counter()
            tokens, beams = self._choose(entries, logits, rows_of)
            self.timing["sample_s"] += time.perf_counter() - t
        t = time.perf_counter()
        done = self.scheduler.complete_step(out, tokens, beams=beams or None)
        self.timing["complete_s"] += time.perf_counter() - t
        self.counts["prefill_tokens"] += out.num_prefill_tokens
        self.counts["decode_tokens"] += out.num_decode_tokens
        self.counts["cached_prompt_tokens"] += out.num_cached_prompt_tokens
        self.counts["generated_tokens"] += done.tokens_generated
        for rid in done.finished_requests:
            self._finish(rid)
        elapsed = time.perf_counter() - t_step
        self.timing["step_s"] += elapsed
        if entries and out.num_prefill_tokens == 0:
            self.timing["decode_steps_s"] += elapsed
            self.timing["decode_steps_cpu_s"] += time.process_time() - cpu_step
            self.timing["decode_attention_s"] += self.kv.timing["attention_s"] - attention_before
            self.timing["decode_bookkeeping_s"] += self._bookkeeping_s() - book_before
            self.counts["decode_step_tokens"] += out.num_decode_tokens
        if self.config.check_tokens:
            self.scheduler.check_invariants()
        return len(entries)

    def _bookkeeping_s(self):
        """Seconds in pagedkv's bookkeeping so far: Scheduler.step and complete_step (the
        BlockManager's admissions, appends, forks, beam reorders, mark_computed, frees, swaps'
        planning) and building the batch (build_batch and the model's input arrays)."""
        t = self.timing
        return t["schedule_s"] + t["complete_s"] + t["layout_s"]

    def _forward(self, entries):
        t0 = time.perf_counter()
        n = len(entries)
        seq_ids = np.fromiter((e.seq_id for e in entries), np.uint64, n)
        num_q = np.fromiter((e.num_query_tokens for e in entries), np.int32, n)
        num_ctx = np.fromiter((e.num_context_tokens for e in entries), np.int32, n)
        layout = self.bm.build_batch(seq_ids, num_new_tokens=num_q,
                                     num_context_tokens=num_ctx + num_q)
        chunks, rows, rows_of = [], [], {}
        end = 0
        for i, e in enumerate(entries):
            if e.is_prefill:
                toks = self.scheduler.sequence_tokens(e.seq_id)
                chunk = toks[e.num_context_tokens:e.num_context_tokens + e.num_query_tokens]
                if e.num_query_tokens < len(toks) - e.num_context_tokens:
                    self.counts["chunked_prefills"] += 1
            else:
                chunk = [self._last[e.seq_id]]
                if self.config.check_tokens:
                    toks = self.scheduler.sequence_tokens(e.seq_id)
                    if toks[-1] != chunk[0] or len(toks) != e.num_context_tokens + 1:
                        raise RuntimeError(f"engine bookkeeping: {e} decodes token {chunk[0]}, "
                                           f"the scheduler has {toks[-3:]} ({len(toks)} tokens)")
            chunks.append(chunk)
            end += e.num_query_tokens
            if e.num_samples > 0:
                rows_of[i] = len(rows)
                rows.append(end - 1)
        dev = self.model.device
        token_ids = torch.from_numpy(np.fromiter(
            (t for c in chunks for t in c), np.int64, int(num_q.sum()))).to(dev)
        positions = torch.from_numpy(np.concatenate(
            [np.arange(c, c + q, dtype=np.int64) for c, q in zip(num_ctx, num_q)])).to(dev)
        logit_rows = torch.tensor(rows, dtype=torch.int64, device=dev)
        self.kv.begin(layout)
        t1 = time.perf_counter()
        self.timing["layout_s"] += t1 - t0
        logits = self.model.forward(token_ids, positions, self.kv.attend, logit_rows)
        logits = logits.cpu()
        self.timing["model_s"] += time.perf_counter() - t1
        return logits, rows_of

    def _choose(self, entries, logits, rows_of):
        """Tokens for the entries that sample (in entry order) and each decoding beam group's
        parent indices."""
        tokens, beams = [], {}
        record = self.config.record_logits
        i, n = 0, len(entries)
        while i < n:
            e = entries[i]
            if e.num_samples == 0:
                i += 1
                continue
            st = self._states[e.request_id]
            params = st.request.sampling
            if e.is_prefill:  # the prompt (or a recomputed prefix) ends: num_samples tokens
                row = logits[rows_of[i]]
                total = e.num_context_tokens + e.num_query_tokens
                if e.num_samples > 1:  # forks now: a fresh start (also after a recompute)
                    st.generated = [[] for _ in range(st.width)]
                    st.beam_logits = []
                else:
                    st.generated[0] = st.generated[0][:total - len(st.prompt)]
                if st.beams:
                    chosen, st.scores = first_beams(row, e.num_samples)
                    if record:
                        st.beam_logits.append(row[None, :].numpy().copy())
                else:
                    chosen = [select_token(row, params, e.request_id, k, total)
                              for k in range(e.num_samples)]
                    if record:
                        st.logits.extend((k, total, row.numpy().copy())
                                         for k in range(e.num_samples))
                for k, token in enumerate(chosen):
                    st.generated[k].append(token)
                    self._last[st.first_seq + k] = token
                if e.num_samples > 1:
                    self.counts["forks"] += e.num_samples - 1
                tokens.extend(chosen)
                i += 1
                continue
            # Decodes: the group's live sequences are consecutive entries, in sequence order.
            j = i
            while j < n and entries[j].request_id == e.request_id:
                j += 1
            group = entries[i:j]
            rows = logits[[rows_of[x] for x in range(i, j)]]
            if st.beams:
                if [x.seq_id - st.first_seq for x in group] != list(range(st.width)):
                    raise RuntimeError(f"request {e.request_id}: beams scheduled out of order")
                parents, chosen, st.scores = next_beams(st.scores, rows)
                if record:
                    st.beam_logits.append(rows.numpy().copy())
                st.generated = [st.generated[p] + [t] for p, t in zip(parents, chosen)]
                beams[e.request_id] = parents
                self.counts["beam_reorders"] += 1
                for k, token in enumerate(chosen):
                    self._last[st.first_seq + k] = token
            else:
                chosen = []
                for x, row in zip(group, rows):
                    k = x.seq_id - st.first_seq
                    position = x.num_context_tokens + 1
                    token = select_token(row, params, e.request_id, k, position)
                    chosen.append(token)
                    st.generated[k].append(token)
                    self._last[x.seq_id] = token
                    if record:
                        st.logits.append((k, position, row.numpy().copy()))
            tokens.extend(chosen)
            i = j
        return tokens, beams

    def _finish(self, rid, rejected=False):
        st = self._states.pop(rid)
        for k in range(st.width):
            self._last.pop(st.first_seq + k, None)
        self.counts["rejected"] += int(rejected)
        self.outputs[rid] = RequestOutput(
            request_id=rid, prompt=st.prompt.tolist(), outputs=[] if rejected else st.generated,
            scores=st.scores if st.beams else None,
            num_preemptions=self.scheduler.num_preemptions(rid), rejected=rejected,
            logits=st.logits if self.config.record_logits else None,
            beam_logits=st.beam_logits if self.config.record_logits and st.beams else None)

    # ---- state --------------------------------------------------------------------------------
    def check_invariants(self):
        """The scheduler's and the BlockManager's invariants (RuntimeError when broken)."""
        self.scheduler.check_invariants()
        self.policy.check_invariants()

    def summary(self):
        """Counters of the run so far (tokens, prefix hits, preemptions, pages moved)."""
        stats = self.bm.stats()
        s = dict(self.counts)
        s.update(self.kv.counts)
        s["preemptions"] = self.scheduler.total_preemptions
        s["cow_pages"] = stats.cow_copies
        s["prefix_hit_pages"] = stats.prefix_hit_pages
        s["prefix_host_hit_pages"] = stats.prefix_host_hit_pages
        s["host_offloads"] = stats.host_offloads
        return s
