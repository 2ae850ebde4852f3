"""Mixed request batches for the demo and the tests: prompt lengths from 1 token to max_prompt
(page-aligned ones, one token past a page, several pages), shared prefixes (whole pages and a
partial page), repeated prompts, and a mix of greedy, sampled, n > 1 and beam-search requests."""

import numpy as np

from .engine import Request
from .sampling import SamplingParams


def prompt_lengths(num_requests, max_prompt, block_size, rng):
    """num_requests lengths in [1, max_prompt]: the edge cases first, then random ones."""
    bs = block_size
    special = [1, 2, bs - 1, bs, bs + 1, 2 * bs, 3 * bs + 5, max_prompt,
               (max_prompt // bs) * bs, 8 * bs, 8 * bs + 1, max_prompt - 1, 5 * bs - 1]
    special = [min(max(1, x), max_prompt) for x in special]
    out = list(dict.fromkeys(special))[:num_requests]
    while len(out) < num_requests:
        out.append(int(rng.integers(1, max_prompt + 1)))
    return out


def mixed_requests(vocab_size, num_requests=32, *, seed=0, block_size=16, max_prompt=600,
                   min_new_tokens=2, max_new_tokens=16, sampling=True, beams=True,
                   repeat_every=11):
    """Deterministic for a seed. Request i: prefix i % 4 (0: none; 1: two whole pages; 2: five
    pages and 3 tokens; 3: sixteen pages) when its length allows, random tokens after it; every
    `repeat_every`-th request repeats an earlier prompt whole. With `sampling`, i % 8 == 2 asks
    for n = 2 samples and i % 8 == 6 for one seeded sample (temperature 0.8); with `beams`,
    i % 8 == 5 runs beam search of width 3 (2 for odd i // 8). The rest is greedy."""
    rng = np.random.default_rng(seed)
    lengths = prompt_lengths(num_requests, max_prompt, block_size, rng)
    prefix_lens = [0, 2 * block_size, 5 * block_size + 3, 16 * block_size]
    prefixes = [rng.integers(0, vocab_size, size=n).tolist() for n in prefix_lens]
    requests, prompts = [], []
    for i, length in enumerate(lengths):
        if repeat_every and i and i % repeat_every == 0:
            prompt = list(prompts[i // 2])
        else:
            prefix = prefixes[i % 4] if len(prefixes[i % 4]) < length else []
            prompt = prefix + rng.integers(0, vocab_size, size=length - len(prefix)).tolist()
        prompts.append(prompt)
        new = int(rng.integers(min_new_tokens, max_new_tokens + 1))
        kind = i % 8
        if sampling and kind == 2:
            r = Request(i, prompt, new, n=2, sampling=SamplingParams(0.8, seed=seed))
        elif sampling and kind == 6:
            r = Request(i, prompt, new, sampling=SamplingParams(0.8, seed=seed))
        elif beams and kind == 5:
            r = Request(i, prompt, new, beam_width=3 if (i // 8) % 2 == 0 else 2)
        else:
            r = Request(i, prompt, new)
        requests.append(r)
    return requests
