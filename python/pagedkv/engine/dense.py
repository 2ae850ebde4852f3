"""The dense reference: the same weights on a contiguous KV cache with
torch.nn.functional.scaled_dot_product_attention, one request at a time. The tests compare the
paged engine against it token for token and logit for logit.

On PyTorch older than 2.0 (Debian 12 ships 1.13) scaled_dot_product_attention does not exist;
sdpa() then computes the same thing explicitly, softmax(q k^T * scale + causal mask) v, which is
what its math backend does. GQA is done by repeating each KV head for its query heads.

DenseDecoder is the baseline of the demo's paged-against-dense throughput comparison: a static
batch on contiguous caches of max length per sequence, decoded together with a length mask.
"""

import math

import torch
import torch.nn.functional as F

from .sampling import GREEDY, first_beams, next_beams, select_token

HAVE_TORCH_SDPA = hasattr(F, "scaled_dot_product_attention")


def sdpa(q, k, v, mask=None):
    """q [..., Tq, D], k/v [..., S, D]; mask [Tq, S] or broadcastable, True = may attend."""
    if HAVE_TORCH_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class DenseKVCache:
    """One sequence's K/V, contiguous: [layers, kv_heads, capacity, head_dim] for K and for V."""

    def __init__(self, model, capacity):
        cfg = model.config
        shape = (cfg.num_layers, cfg.num_kv_heads, capacity, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=model.dtype, device=model.device)
        self.v = torch.zeros(shape, dtype=model.dtype, device=model.device)
        self.group = cfg.num_q_heads // cfg.num_kv_heads
        self.length = 0  # tokens whose K/V are stored

    def clone(self):
        other = object.__new__(DenseKVCache)
        other.k, other.v = self.k.clone(), self.v.clone()
        other.group, other.length = self.group, self.length
        return other

    def attention(self):
        """The callback of LlamaModel.forward for the next len(tokens) tokens of this sequence."""
        start = self.length

        def attend(layer, q, k, v):
            t = q.shape[0]
            end = start + t
            if end > self.k.shape[2]:
                raise ValueError(f"dense cache of {self.k.shape[2]} tokens is full")
            self.k[layer, :, start:end] = k.transpose(0, 1)
            self.v[layer, :, start:end] = v.transpose(0, 1)
            keys = self.k[layer, :, :end].repeat_interleave(self.group, dim=0)
            values = self.v[layer, :, :end].repeat_interleave(self.group, dim=0)
            mask = None
            if t > 1:  # query i (position start + i) sees keys <= start + i
                rows = torch.arange(t, device=q.device)[:, None] + start
                mask = torch.arange(end, device=q.device)[None, :] <= rows
            return sdpa(q.transpose(0, 1), keys, values, mask).transpose(0, 1).contiguous()

        return attend

    def run(self, model, tokens, logit_rows=None):
        """Appends `tokens` (ints) and returns their logits (all rows, or logit_rows)."""
        ids = torch.as_tensor(tokens, dtype=torch.int64, device=model.device)
        positions = torch.arange(self.length, self.length + len(tokens), device=model.device)
        rows = None if logit_rows is None else torch.as_tensor(logit_rows, dtype=torch.int64,
                                                                device=model.device)
        logits = model.forward(ids, positions, self.attention(), rows)
        self.length += len(tokens)
        return logits


class DenseReference:
    """Generation with a dense cache, one request at a time. Every method returns the logits it
    based each choice on, keyed by the position of the token chosen."""

    def __init__(self, model):
        self.model = model

    def logits_without_cache(self, tokens):
        """Logits [len(tokens), vocab] of a whole sequence in one forward pass (no cache reuse):
        a check of the cached paths."""
        cache = DenseKVCache(self.model, len(tokens))
        return cache.run(self.model, tokens)

    def generate(self, prompt, max_new_tokens, sampling=GREEDY, request_id=0, sample_index=0,
                 cache=None, first_logits=None):
        """(tokens, {position: logits}) of one sequence; greedy or seeded sampling."""
        if cache is None:
            cache = DenseKVCache(self.model, len(prompt) + max_new_tokens)
            first_logits = cache.run(self.model, list(prompt), logit_rows=[len(prompt) - 1])[0]
        logits, out, log = first_logits, [], {}
        for _ in range(max_new_tokens):
            position = len(prompt) + len(out)
            log[position] = logits.cpu().numpy()
            token = select_token(logits, sampling, request_id, sample_index, position)
            out.append(token)
            if len(out) < max_new_tokens:
                logits = cache.run(self.model, [token])[0]
        return out, log

    def generate_n(self, prompt, max_new_tokens, n, sampling, request_id=0):
        """n independent samples of one prompt (the prompt's cache computed once, then cloned)."""
        cache = DenseKVCache(self.model, len(prompt) + max_new_tokens)
        first = cache.run(self.model, list(prompt), logit_rows=[len(prompt) - 1])[0]
        return [self.generate(prompt, max_new_tokens, sampling, request_id, k, cache.clone(),
                              first) for k in range(n)]

    def beam_search(self, prompt, width, max_new_tokens):
        """(beams, scores, [logits [width, vocab] per step]): every beam keeps its own dense
        cache, and a reorder copies each chosen parent's whole cache (what a dense cache must
        do). Beams are best first; scores are cumulative log-probs."""
        cache = DenseKVCache(self.model, len(prompt) + max_new_tokens)
        first = cache.run(self.model, list(prompt), logit_rows=[len(prompt) - 1])[0]
        tokens, scores = first_beams(first, width)
        beams = [[t] for t in tokens]
        caches = [cache.clone() for _ in range(width)]
        step_logits = [first[None, :].cpu().numpy()]  # one row: the prompt's
        for _ in range(max_new_tokens - 1):
            logits = torch.stack([c.run(self.model, [b[-1]])[0] for c, b in zip(caches, beams)])
            step_logits.append(logits.cpu().numpy())
            parents, tokens, scores = next_beams(scores, logits)
            beams = [beams[p] + [t] for p, t in zip(parents, tokens)]
            caches = [caches[p].clone() for p in parents]
        return beams, scores, step_logits


class DenseDecoder:
    """Baseline for throughput: greedy generation of a static batch with one contiguous cache
    of max length per sequence ([layers, batch, kv_heads, max_len, head_dim]); prompts are
    prefilled one at a time, then every decode step runs the whole batch through sdpa() with a
    length mask (the group's query heads as rows of their KV head, so the cache is never
    copied). decode_tokens / timing["decode_s"] is decode tokens/s."""

    def __init__(self, model):
        self.model = model
        # decode_attention_s: the decode steps' cache writes and sdpa() calls.
        self.timing = {"prefill_s": 0.0, "decode_s": 0.0, "decode_attention_s": 0.0,
                       "decode_cpu_s": 0.0}
        self.decode_tokens = 0

    def generate(self, prompts, max_new_tokens):
        import time
        model, cfg = self.model, self.model.config
        batch = len(prompts)
        max_len = max(len(p) for p in prompts) + max_new_tokens
        shape = (cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim)
        k_cache = torch.zeros(shape, dtype=model.dtype, device=model.device)
        v_cache = torch.zeros(shape, dtype=model.dtype, device=model.device)
        group = cfg.num_q_heads // cfg.num_kv_heads
        lengths = torch.zeros(batch, dtype=torch.int64)
        last = []
        t0 = time.perf_counter()
        for b, prompt in enumerate(prompts):
            cache = DenseKVCache(model, len(prompt))
            logits = cache.run(model, list(prompt), logit_rows=[len(prompt) - 1])[0]
            k_cache[:, b, :, :len(prompt)] = cache.k
            v_cache[:, b, :, :len(prompt)] = cache.v
            lengths[b] = len(prompt)
            last.append(int(torch.argmax(logits)))
        self.timing["prefill_s"] += time.perf_counter() - t0
        outputs = [[t] for t in last]
        batch_index = torch.arange(batch, device=model.device)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(max_new_tokens - 1):
            pos = lengths.to(model.device)
            end = int(lengths.max()) + 1
            visible = (torch.arange(end, device=model.device)[None, :] <= pos[:, None])
            mask = visible[:, None, None, :]  # [B, 1, 1, S]

            def attend(layer, q, k, v):
                t_attn = time.perf_counter()
                k_cache[layer, batch_index, :, pos] = k
                v_cache[layer, batch_index, :, pos] = v
                # GQA without copying the cache: the `group` query heads of a KV head are
                # that head's query rows ([B, kv_heads, group, D] against [B, kv_heads, S, D]).
                out = sdpa(q.view(batch, cfg.num_kv_heads, group, cfg.head_dim),
                           k_cache[layer, :, :, :end], v_cache[layer, :, :, :end], mask)
                out = out.reshape(batch, cfg.num_q_heads, cfg.head_dim)
                self.timing["decode_attention_s"] += time.perf_counter() - t_attn
                return out

            ids = torch.tensor([o[-1] for o in outputs], dtype=torch.int64, device=model.device)
            logits = model.forward(ids, pos, attend)
            for b, t in enumerate(torch.argmax(logits, dim=-1).tolist()):
                outputs[b].append(int(t))
            lengths += 1
            self.decode_tokens += batch
        self.timing["decode_s"] += time.perf_counter() - t0
        self.timing["decode_cpu_s"] += time.process_time() - cpu0
        return outputs
