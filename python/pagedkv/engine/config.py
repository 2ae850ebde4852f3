"""ModelConfig: the shape of a Llama-architecture decoder (layers, heads, KV heads, head dim,
vocabulary, MLP width, RoPE base, RMSNorm epsilon) and the pagedkv ModelSpec of its KV cache."""

import dataclasses
import json
import os

import pagedkv

# Keys of the usual checkpoint config.json -> our field names (from_dict accepts both).
_CHECKPOINT_KEYS = {
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_q_heads",
    "num_key_value_heads": "num_kv_heads",
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A Llama-architecture decoder: RoPE, grouped-query attention, RMSNorm, SwiGLU MLP.

    The defaults are a toy model (about 100k parameters) that the tests run in seconds.
    ValueError from the constructor names the field and says what is valid.
    """

    vocab_size: int = 256
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_q_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    name: str = "llama-toy"

    def __post_init__(self):
        for field in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                      "num_q_heads", "num_kv_heads", "head_dim"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{field} must be an int >= 1, got {value!r}")
        if self.num_q_heads % self.num_kv_heads:
            raise ValueError(f"ModelConfig: num_q_heads ({self.num_q_heads}) must be a multiple "
                             f"of num_kv_heads ({self.num_kv_heads}) for grouped-query attention")
        if self.head_dim % 2:
            raise ValueError(f"ModelConfig.head_dim must be even (RoPE rotates pairs), got "
                             f"{self.head_dim}")
        if not self.rope_theta > 0 or not self.rms_norm_eps > 0:
            raise ValueError(f"ModelConfig: rope_theta ({self.rope_theta}) and rms_norm_eps "
                             f"({self.rms_norm_eps}) must be > 0")

    @property
    def num_params(self):
        """Parameters of the model (embedding and LM head counted once each)."""
        h, q, kv = self.hidden_size, self.num_q_heads * self.head_dim, \
            self.num_kv_heads * self.head_dim
        per_layer = h * q * 2 + h * kv * 2 + 3 * h * self.intermediate_size + 2 * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return self.vocab_size * h + head + h + self.num_layers * per_layer

    def kv_spec(self, kv_dtype="fp32"):
        """The pagedkv.ModelSpec of this model's KV cache (one full-attention group)."""
        return pagedkv.ModelSpec(name=self.name, num_layers=self.num_layers,
                                 num_q_heads=self.num_q_heads, num_kv_heads=self.num_kv_heads,
                                 head_dim=self.head_dim, kv_dtype=kv_dtype)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """From our field names or the usual checkpoint config.json names (num_hidden_layers,
        num_attention_heads, num_key_value_heads); head_dim defaults to hidden / heads; other
        keys are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {}
        for key, value in values.items():
            key = _CHECKPOINT_KEYS.get(key, key)
            if key in fields:
                kw[key] = value
        if "num_kv_heads" not in kw and "num_q_heads" in kw:
            kw["num_kv_heads"] = kw["num_q_heads"]
        if "head_dim" not in kw and "hidden_size" in kw and "num_q_heads" in kw:
            if kw["hidden_size"] % kw["num_q_heads"]:
                raise ValueError(f"config: hidden_size {kw['hidden_size']} is not a multiple of "
                                 f"{kw['num_q_heads']} heads; give head_dim")
            kw["head_dim"] = kw["hidden_size"] // kw["num_q_heads"]
        return cls(**kw)

    @classmethod
    def from_json_file(cls, path):
        with open(os.fspath(path), encoding="utf-8") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not a JSON model config ({e})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a model config must be a JSON object")
        return cls.from_dict(values)

    def describe(self):
        tied = ", tied embeddings" if self.tie_word_embeddings else ""
        return (f"{self.name}: {self.num_layers} layers, hidden {self.hidden_size}, "
                f"{self.num_q_heads} q / {self.num_kv_heads} kv heads x {self.head_dim}, "
                f"MLP {self.intermediate_size}, vocab {self.vocab_size}{tied} "
                f"({self.num_params / 1e6:.2f}M parameters)")
