"""pagedkv.engine: a reference inference engine on pagedkv.

A Llama-architecture decoder in PyTorch (RoPE, grouped-query attention, RMSNorm, SwiGLU) that
generates through pagedkv: K/V live in a BlockManager's pools (seen by torch without a copy),
new K/V go in with write_kv through the batch's slot mapping, attention is pagedkv's paged
attention (CPU kernels; CUDA kernels through pagedkv.raw), and pagedkv.Scheduler does continuous
batching, chunked prefill, prefix caching, swap/recompute preemption, n > 1 sampling and beam
search. SpeculativeDecoder adds draft-and-verify decoding with rewind. The dense reference
(DenseReference) runs the same weights on a contiguous cache, one request at a time.

    import torch
    from pagedkv.engine import Engine, EngineConfig, LlamaModel, ModelConfig, Request
    torch.set_num_threads(1)
    model = LlamaModel.random(ModelConfig(), seed=0)
    engine = Engine(model, EngineConfig(num_gpu_blocks=64))
    engine.add_request(Request(1, [3, 1, 4, 1, 5], max_new_tokens=8))
    print(engine.run()[1].outputs)

    python3 -m pagedkv.engine --demo      # a mixed batch: tokens/s, prefix hits, preemptions

Needs PyTorch (Debian: apt-get install python3-torch). See docs/engine.md.
"""

try:
    import torch  # noqa: F401  (checked here, used by every module)
except ImportError as e:  # pragma: no cover - depends on the machine
    raise ImportError("pagedkv.engine needs PyTorch: apt-get install python3-torch (Debian) or "
                      "pip install torch") from e

from .config import ModelConfig
from .dense import DenseDecoder, DenseKVCache, DenseReference, sdpa
from .engine import Engine, EngineConfig, Request, RequestOutput
from .model import LlamaModel
from .paged_kv import CpuPagedKV, CudaPagedKV, RawPagedKV, make_paged_kv, pool_array
from .safetensors import SafetensorsError, load_safetensors, save_safetensors
from .sampling import GREEDY, SamplingParams
from .speculative import SpeculativeDecoder

__all__ = ["ModelConfig", "LlamaModel", "Engine", "EngineConfig", "Request", "RequestOutput",
           "SamplingParams", "GREEDY", "DenseReference", "DenseKVCache", "DenseDecoder", "sdpa",
           "SpeculativeDecoder", "CpuPagedKV", "CudaPagedKV", "RawPagedKV", "make_paged_kv",
           "pool_array",
           "load_safetensors", "save_safetensors", "SafetensorsError"]
