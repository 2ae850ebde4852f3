"""LlamaModel: a Llama-architecture decoder in PyTorch whose attention is a callback, so the same
weights run over pagedkv's paged cache (engine.py, speculative.py) and over a dense contiguous
cache (dense.py, the reference).

    model = LlamaModel.random(ModelConfig(num_layers=2), seed=0)
    logits = model.forward(tokens, positions, attention, logit_rows)   # [rows, vocab] float32

forward() takes a flat batch of T tokens (several sequences, each a run of consecutive
positions) and calls attention(layer, q, k, v) once per layer with q [T, num_q_heads, head_dim]
and k, v [T, num_kv_heads, head_dim] (RoPE applied); the callback stores k, v and returns the
attention output [T, num_q_heads, head_dim]. Weight names follow the usual Llama checkpoint
layout (model.layers.{i}.self_attn.q_proj.weight, ...), so a safetensors checkpoint of that
layout loads with from_safetensors(). RoPE rotates the two halves of each head (the layout
those checkpoints use).
"""

import math
import os

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .safetensors import load_safetensors, save_safetensors

EMBED = "model.embed_tokens.weight"
FINAL_NORM = "model.norm.weight"
LM_HEAD = "lm_head.weight"
_LAYER_TENSORS = ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                  "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                  "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                  "mlp.down_proj.weight")


def layer_tensor_name(layer, name):
    return f"model.layers.{layer}.{name}"


def expected_shapes(config):
    """Checkpoint tensor name -> shape for `config`."""
    h, q, kv, m = (config.hidden_size, config.num_q_heads * config.head_dim,
                   config.num_kv_heads * config.head_dim, config.intermediate_size)
    per_layer = {
        "input_layernorm.weight": (h,), "self_attn.q_proj.weight": (q, h),
        "self_attn.k_proj.weight": (kv, h), "self_attn.v_proj.weight": (kv, h),
        "self_attn.o_proj.weight": (h, q), "post_attention_layernorm.weight": (h,),
        "mlp.gate_proj.weight": (m, h), "mlp.up_proj.weight": (m, h),
        "mlp.down_proj.weight": (h, m),
    }
    shapes = {EMBED: (config.vocab_size, h), FINAL_NORM: (h,)}
    if not config.tie_word_embeddings:
        shapes[LM_HEAD] = (config.vocab_size, h)
    for layer in range(config.num_layers):
        for name, shape in per_layer.items():
            shapes[layer_tensor_name(layer, name)] = shape
    return shapes


class _Layer:
    __slots__ = ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down")


class LlamaModel:
    """Weights and the forward pass. Construct with random(), from_safetensors() or directly
    from a {checkpoint name: tensor} dict (ValueError naming missing, unexpected or misshapen
    tensors)."""

    def __init__(self, config, weights, *, device="cpu", dtype=torch.float32):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype}")
        want = expected_shapes(config)
        optional = {LM_HEAD} if config.tie_word_embeddings else set()
        missing = sorted(set(want) - set(weights))
        unexpected = sorted(set(weights) - set(want) - optional)
        if missing or unexpected:
            raise ValueError(
                f"weights do not match {config.describe()}: missing "
                f"{missing[:6] or 'none'}{' ...' if len(missing) > 6 else ''}, unexpected "
                f"{unexpected[:6] or 'none'}{' ...' if len(unexpected) > 6 else ''}; check the "
                f"config (layers, heads, tie_word_embeddings) against the checkpoint")
        for name, shape in want.items():
            got = tuple(weights[name].shape)
            if got != shape:
                raise ValueError(f"weight {name} has shape {got}, {shape} expected for "
                                 f"{config.describe()}")
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        cast = {name: t.detach().to(device=self.device, dtype=dtype) for name, t in
                weights.items() if name in want or name in optional}
        self.embed = cast[EMBED]
        self.final_norm = cast[FINAL_NORM]
        self.lm_head = cast[EMBED] if config.tie_word_embeddings else cast[LM_HEAD]
        self.layers = []
        for i in range(config.num_layers):
            layer = _Layer()
            t = {name: cast[layer_tensor_name(i, name)] for name in _LAYER_TENSORS}
            layer.attn_norm, layer.wq, layer.wk, layer.wv, layer.wo = (
                t["input_layernorm.weight"], t["self_attn.q_proj.weight"],
                t["self_attn.k_proj.weight"], t["self_attn.v_proj.weight"],
                t["self_attn.o_proj.weight"])
            layer.mlp_norm, layer.w_gate, layer.w_up, layer.w_down = (
                t["post_attention_layernorm.weight"], t["mlp.gate_proj.weight"],
                t["mlp.up_proj.weight"], t["mlp.down_proj.weight"])
            self.layers.append(layer)
        half = config.head_dim // 2
        exponent = torch.arange(half, dtype=torch.float64) / half
        self._inv_freq = (1.0 / (config.rope_theta ** exponent)).to(self.device)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def random(cls, config, seed=0, *, device="cpu", dtype=torch.float32):
        """Seeded random weights (the same seed gives the same weights on every machine):
        projections N(0, 1/fan_in), norms near 1, embeddings N(0, 1)."""
        gen = torch.Generator().manual_seed(int(seed))
        weights = {}
        for name, shape in expected_shapes(config).items():
            if len(shape) == 1:
                weights[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
            elif name == EMBED:
                weights[name] = torch.randn(shape, generator=gen)
            else:
                weights[name] = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        return cls(config, weights, device=device, dtype=dtype)

    @classmethod
    def from_safetensors(cls, path, config=None, *, device="cpu", dtype=torch.float32):
        """Loads a checkpoint; `config` defaults to config.json next to the file."""
        path = os.fspath(path)
        if config is None:
            config_path = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
            if not os.path.exists(config_path):
                raise FileNotFoundError(f"no model config given and no {config_path}; pass "
                                        f"config=ModelConfig(...) or --config FILE")
            config = ModelConfig.from_json_file(config_path)
        return cls(config, load_safetensors(path), device=device, dtype=dtype)

    def state_dict(self):
        """{checkpoint name: tensor} (shared with the model, not copied)."""
        out = {EMBED: self.embed, FINAL_NORM: self.final_norm}
        if not self.config.tie_word_embeddings:
            out[LM_HEAD] = self.lm_head
        for i, layer in enumerate(self.layers):
            for name, t in zip(_LAYER_TENSORS, (layer.attn_norm, layer.wq, layer.wk, layer.wv,
                                                layer.wo, layer.mlp_norm, layer.w_gate,
                                                layer.w_up, layer.w_down)):
                out[layer_tensor_name(i, name)] = t
        return out

    def save_safetensors(self, path):
        save_safetensors(self.state_dict(), path, metadata={"format": "pt"})

    def to(self, device=None, dtype=None):
        """A copy on another device and/or dtype."""
        return LlamaModel(self.config, self.state_dict(), device=device or self.device,
                          dtype=dtype or self.dtype)

    def truncated(self, num_layers):
        """A smaller model of the same family: the first `num_layers` layers with the same
        embeddings, final norm and LM head (tensors shared, not copied). A draft model for
        speculative decoding."""
        if not 1 <= num_layers <= self.config.num_layers:
            raise ValueError(f"truncated: num_layers must be in [1, {self.config.num_layers}], "
                             f"got {num_layers}")
        config = self.config.replace(num_layers=num_layers,
                                     name=f"{self.config.name}-first{num_layers}")
        weights = {k: v for k, v in self.state_dict().items()
                   if not k.startswith("model.layers.") or int(k.split(".")[2]) < num_layers}
        return LlamaModel(config, weights, device=self.device, dtype=self.dtype)

    # ---- forward --------------------------------------------------------------------------------
    def _rms_norm(self, x, weight):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.config.rms_norm_eps)
        return xf.to(self.dtype) * weight

    def _rope(self, positions):
        angles = positions.to(torch.float64)[:, None] * self._inv_freq[None, :]
        return (torch.cos(angles).to(torch.float32)[:, None, :],
                torch.sin(angles).to(torch.float32)[:, None, :])

    def _apply_rope(self, x, cos, sin):
        half = x.shape[-1] // 2
        xf = x.float()
        x1, x2 = xf[..., :half], xf[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(self.dtype)

    def forward(self, tokens, positions, attention, logit_rows=None):
        """Logits [len(logit_rows) or T, vocab] (float32) of a flat batch of T tokens.

        tokens, positions: int64 tensors [T] on the model's device; attention(layer, q, k, v)
        -> out as described in the module docstring; logit_rows: int64 tensor of the rows whose
        logits are wanted (None = all)."""
        cfg = self.config
        num_tokens = tokens.shape[0]
        hq, hkv, d = cfg.num_q_heads, cfg.num_kv_heads, cfg.head_dim
        cos, sin = self._rope(positions)
        h = F.embedding(tokens, self.embed)
        for i, layer in enumerate(self.layers):
            x = self._rms_norm(h, layer.attn_norm)
            q = self._apply_rope(F.linear(x, layer.wq).view(num_tokens, hq, d), cos, sin)
            k = self._apply_rope(F.linear(x, layer.wk).view(num_tokens, hkv, d), cos, sin)
            v = F.linear(x, layer.wv).view(num_tokens, hkv, d)
            o = attention(i, q, k, v)
            h = h + F.linear(o.reshape(num_tokens, hq * d), layer.wo)
            x = self._rms_norm(h, layer.mlp_norm)
            h = h + F.linear(F.silu(F.linear(x, layer.w_gate)) * F.linear(x, layer.w_up),
                             layer.w_down)
        if logit_rows is not None:
            h = h.index_select(0, logit_rows)
        return F.linear(self._rms_norm(h, self.final_norm), self.lm_head).float()
