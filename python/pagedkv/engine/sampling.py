"""Token selection shared by the paged engine and the dense reference, so both pick tokens the
same way from their own logits: greedy (argmax), seeded sampling (the Gumbel-max trick with noise
that depends only on the seed, request, sample index and position, so a request preempted and
recomputed draws the same tokens), and beam search steps."""

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """temperature 0 = greedy; > 0 samples from softmax(logits / temperature) with noise seeded
    by (seed, request id, sample index, position)."""

    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not self.temperature >= 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")

    @property
    def greedy(self):
        return self.temperature == 0


GREEDY = SamplingParams()


def select_token(logits, params, request_id, sample_index, position):
    """The token at `position` of sample `sample_index` of a request, from logits [vocab]."""
    if params.greedy:
        return int(torch.argmax(logits))
    rng = np.random.default_rng([int(params.seed), int(request_id), int(sample_index),
                                 int(position)])
    noise = torch.from_numpy(rng.gumbel(size=logits.shape[-1]))
    return int(torch.argmax(logits.double().cpu() / params.temperature + noise))


def log_softmax(logits):
    return torch.log_softmax(logits.double().cpu(), dim=-1)


def first_beams(logits, width):
    """Beam search after the prompt: the `width` most likely tokens and their log-probs."""
    logprobs = log_softmax(logits).numpy()
    order = np.argsort(-logprobs, kind="stable")[:width]
    return [int(t) for t in order], [float(logprobs[t]) for t in order]


def next_beams(scores, logits):
    """One beam-search step. scores [width] (cumulative log-probs), logits [width, vocab].
    Returns (parent index of each new beam, its token, its score), best first; ties go to the
    lower (beam, token) index."""
    width, vocab = logits.shape
    candidates = np.asarray(scores, dtype=np.float64)[:, None] + log_softmax(logits).numpy()
    order = np.argsort(-candidates.reshape(-1), kind="stable")[:width]
    parents = [int(i // vocab) for i in order]
    tokens = [int(i % vocab) for i in order]
    return parents, tokens, [float(candidates.reshape(-1)[i]) for i in order]
