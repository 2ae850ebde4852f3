# Type stubs of the extension module pagedkv._pagedkv (hand-written; keep in step with
# python/src/*_bindings.cc). Array arguments accept any array-like; they are converted (copied)
# only when not already C-contiguous arrays of the stated dtype.
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

_IntArray = Union[int, Sequence[int], npt.NDArray[np.integer]]
_Pairs = Union[Sequence[Sequence[int]], npt.NDArray[np.integer]]

_bound_areas: Tuple[str, ...]

class OutOfBlocks(MemoryError): ...

# ---- core -----------------------------------------------------------------------------------
class Tier:
    GPU: Tier
    HOST: Tier
    VIRTUAL: Tier
    def __init__(self, name: Union[str, int]) -> None: ...
    @property
    def label(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class DType:
    FP32: DType
    FP16: DType
    BF16: DType
    FP8_E4M3: DType
    INT8: DType
    def __init__(self, name: Union[str, int]) -> None: ...
    @property
    def label(self) -> str: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def name(self) -> str: ...

_TierLike = Union[Tier, str]
_DTypeLike = Union[DType, str]

def dtype_size(dtype: _DTypeLike) -> int: ...

class AttentionKind:
    FULL: AttentionKind
    SLIDING: AttentionKind
    CROSS: AttentionKind
    SHARES: AttentionKind
    @property
    def label(self) -> str: ...

class LayerSpec:
    kind: AttentionKind
    window_tokens: int
    shares_layer: int
    def __init__(self, text: str) -> None: ...
    @staticmethod
    def full() -> LayerSpec: ...
    @staticmethod
    def sliding(window_tokens: int) -> LayerSpec: ...
    @staticmethod
    def cross() -> LayerSpec: ...
    @staticmethod
    def shares(layer: int) -> LayerSpec: ...

class KvGroup:
    @property
    def group_id(self) -> int: ...
    @property
    def kind(self) -> AttentionKind: ...
    @property
    def window_tokens(self) -> int: ...
    @property
    def layers(self) -> List[int]: ...

class ModelSpec:
    name: str
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    kv_dtype: DType
    layers: List[LayerSpec]
    def __init__(self, *, name: str = "custom", num_q_heads: int, num_kv_heads: int,
                 head_dim: int, kv_dtype: _DTypeLike = ..., num_layers: int = -1,
                 layers: Optional[Sequence[Union[LayerSpec, str]]] = None,
                 validate: bool = True) -> None: ...
    @staticmethod
    def preset(name: str) -> ModelSpec: ...
    @staticmethod
    def preset_names() -> List[str]: ...
    @staticmethod
    def from_json(json_text: str) -> ModelSpec: ...
    @staticmethod
    def from_json_file(path: str) -> ModelSpec: ...
    def to_json(self) -> str: ...
    def validate(self) -> None: ...
    def groups(self) -> List[KvGroup]: ...
    def storage_layer(self, layer: int) -> int: ...
    def bytes_per_token_per_layer(self) -> int: ...
    def num_storage_layers(self) -> int: ...
    @property
    def num_layers(self) -> int: ...

class RemoteTierConfig:
    url: str
    timeout_us: int
    ttl_seconds: int
    admit_hits: int
    queue_bytes: int
    min_hit_pages: int
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class CacheConfig:
    MAX_BLOCK_SIZE_TOKENS: int
    block_size_tokens: int
    gpu_tier: Tier
    gpu_num_blocks: int
    gpu_budget_bytes: int
    gpu_memory_fraction: float
    host_num_blocks: int
    host_budget_bytes: int
    watermark: float
    enable_prefix_caching: bool
    strict_gpu: bool
    host_huge_pages: bool
    remote: RemoteTierConfig
    def __init__(self, **fields: object) -> None: ...
    def validate(self) -> None: ...

class GroupSizing:
    group_id: int
    kind: AttentionKind
    window_tokens: int
    num_layers: int
    bytes_per_token: int
    bytes_per_block: int
    tokens_per_sequence: int
    blocks_per_sequence: int
    bytes_per_sequence: int

class SizingResult:
    model_name: str
    kv_dtype: DType
    context_tokens: int
    block_size_tokens: int
    encoder_tokens: int
    bytes_per_token: int
    bytes_per_block: int
    bytes_per_sequence: int
    gpu_memory_bytes: int
    weights_bytes: int
    gpu_memory_fraction: float
    budget_bytes: int
    num_blocks: int
    max_tokens: int
    max_sequences: int
    groups: List[GroupSizing]

def compute_sizing(model: ModelSpec, *, gpu_memory_bytes: int, context_tokens: int = 2048,
                   block_size_tokens: int = 16, kv_dtype: Optional[_DTypeLike] = None,
                   weights_bytes: int = 0, gpu_memory_fraction: float = 1.0,
                   encoder_tokens: Optional[int] = None) -> SizingResult: ...
def parse_byte_size(text: str) -> int: ...
def format_bytes(num_bytes: int) -> str: ...
def set_log_level(level: str) -> None: ...

# ---- block_manager ----------------------------------------------------------------------------
class EvictionPriority:
    NORMAL: EvictionPriority
    LOW: EvictionPriority

class AdmitInfo:
    can_admit: bool
    num_cached_tokens: int
    num_new_blocks: int
    num_host_hit_pages: int
    num_remote_hit_pages: int

class GroupInfo:
    group: KvGroup
    bytes_per_block: int
    gpu_num_blocks: int
    host_num_blocks: int

class LayerLocation:
    group: int
    layer_in_group: int

class RemoteTierStats:
    lookups: int
    lookups_skipped: int
    lookup_pages: int
    hit_pages: int
    miss_missing: int
    miss_timeout: int
    miss_error: int
    miss_corrupt: int
    miss_foreign: int
    bytes_read: int
    writes_queued: int
    writes_done: int
    writes_dropped: int
    write_errors: int
    bytes_written: int
    queue_bytes: int

class SequenceStats:
    seq_id: int
    num_tokens: int
    num_computed_tokens: int
    num_encoder_tokens: int
    num_pages: int
    num_shared_pages: int
    swapped_out: bool

class GroupPoolStats:
    group: int
    gpu_num_blocks: int
    gpu_free_blocks: int
    gpu_cached_blocks: int
    gpu_in_use_blocks: int
    host_num_blocks: int
    host_free_blocks: int
    host_cached_blocks: int
    host_in_use_blocks: int

class BlockManagerStats:
    num_sequences: int
    num_swapped_sequences: int
    tokens_stored: int
    slots_allocated: int
    internal_fragmentation_slots: int
    pages_saved_by_sharing: int
    prefix_query_pages: int
    prefix_hit_pages: int
    prefix_host_hit_pages: int
    prefix_remote_hit_pages: int
    prefix_hit_rate: float
    swap_out_bytes: int
    swap_in_bytes: int
    copy_bytes: int
    cow_copies: int
    host_offloads: int
    groups: List[GroupPoolStats]

class BlockTable:
    @property
    def blocks(self) -> npt.NDArray[np.uint32]: ...
    num_tokens: int
    num_pages: int
    first_live_page: int
    num_live_pages: int
    tier: Tier
    def slot(self, token_index: int, block_size: int) -> int: ...
    def __len__(self) -> int: ...

class GroupCacheOps:
    group: int
    bytes_per_block: int
    @property
    def swap_out(self) -> npt.NDArray[np.uint32]: ...  # [n, 2] (src, dst)
    @property
    def swap_in(self) -> npt.NDArray[np.uint32]: ...
    @property
    def copies(self) -> npt.NDArray[np.uint32]: ...
    def empty(self) -> bool: ...
    def swap_out_bytes(self) -> int: ...
    def swap_in_bytes(self) -> int: ...
    def copy_bytes(self) -> int: ...

class CacheOps:
    def __init__(self) -> None: ...
    @property
    def groups(self) -> List[GroupCacheOps]: ...
    def empty(self) -> bool: ...
    def swap_out_bytes(self) -> int: ...
    def swap_in_bytes(self) -> int: ...
    def copy_bytes(self) -> int: ...
    def total_bytes(self) -> int: ...
    def __bool__(self) -> bool: ...

class BatchLayout:
    group: int
    block_size: int
    batch_size: int
    num_pages: int
    num_new_tokens: int
    @property
    def page_indptr(self) -> npt.NDArray[np.int32]: ...
    @property
    def page_indices(self) -> npt.NDArray[np.int32]: ...
    @property
    def last_page_len(self) -> npt.NDArray[np.int32]: ...
    @property
    def first_page_token(self) -> npt.NDArray[np.int32]: ...
    @property
    def query_indptr(self) -> npt.NDArray[np.int32]: ...
    @property
    def slot_mapping(self) -> npt.NDArray[np.int64]: ...

class BlockManager:
    def __init__(self, spec: ModelSpec, config: CacheConfig) -> None: ...
    @property
    def block_size(self) -> int: ...
    @property
    def num_groups(self) -> int: ...
    def group_info(self, group: int) -> GroupInfo: ...
    def locate_layer(self, layer: int) -> LayerLocation: ...
    @property
    def prefix_caching_enabled(self) -> bool: ...
    @property
    def has_host_tier(self) -> bool: ...
    def _pool_array(self, group: int, tier: _TierLike, num_kv_heads: int, head_dim: int,
                    dtype: _DTypeLike) -> np.ndarray: ...
    def pool_ptr(self, group: int = 0, tier: _TierLike = ...) -> int: ...
    def pool_is_device_memory(self, group: int = 0, tier: _TierLike = ...) -> bool: ...
    def can_admit(self, prompt: _IntArray, extra_key: int = 0,
                  priority: EvictionPriority = ...,
                  encoder_key: Optional[int] = None) -> AdmitInfo: ...
    def add_sequence(self, seq_id: int, prompt: _IntArray, extra_key: int = 0,
                     priority: EvictionPriority = ...,
                     encoder_key: Optional[int] = None) -> AdmitInfo: ...
    def mark_computed(self, seq_id: int, num_computed_tokens: int) -> None: ...
    def mark_computed_batch(self, seq_ids: _IntArray, num_computed_tokens: _IntArray) -> None: ...
    def num_computed_tokens(self, seq_id: int) -> int: ...
    def append_tokens(self, seq_id: int, tokens: _IntArray) -> None: ...
    def append_token_batch(self, seq_ids: _IntArray, tokens: _IntArray) -> None: ...
    def can_append(self, seq_id: int, num_tokens: int = 1) -> bool: ...
    def blocks_to_append(self, seq_id: int, num_tokens: int = 1) -> int: ...
    def fork(self, parent: int, child: int) -> None: ...
    def reorder_beams(self, beams: _IntArray, parent_indices: _IntArray) -> None: ...
    def rewind(self, seq_id: int, num_tokens: int) -> None: ...
    def free(self, seq_id: int) -> None: ...
    def swap_out(self, seq_ids: _IntArray) -> None: ...
    def swap_in(self, seq_ids: _IntArray) -> None: ...
    def can_swap_in(self, seq_ids: _IntArray) -> bool: ...
    def set_cross_attention(self, seq_id: int, encoder_tokens: int) -> None: ...
    def set_eviction_priority(self, seq_id: int, priority: EvictionPriority) -> None: ...
    def touch_prefix(self, prompt: _IntArray, extra_key: int = 0,
                     encoder_key: Optional[int] = None) -> int: ...
    def take_cache_ops(self) -> CacheOps: ...
    def build_batch(self, seq_ids: _IntArray, num_new_tokens: _IntArray = 1,
                    num_context_tokens: Optional[_IntArray] = None,
                    group: int = 0) -> BatchLayout: ...
    def contains(self, seq_id: int) -> bool: ...
    def __contains__(self, seq_id: int) -> bool: ...
    @property
    def num_sequences(self) -> int: ...
    def __len__(self) -> int: ...
    def num_tokens(self, seq_id: int) -> int: ...
    def sequence_stats(self, seq_id: int) -> SequenceStats: ...
    def block_table(self, seq_id: int, group: int = 0) -> BlockTable: ...
    def sequence_ids(self) -> List[int]: ...
    def stats(self) -> BlockManagerStats: ...
    @property
    def has_remote_tier(self) -> bool: ...
    def remote_stats(self) -> RemoteTierStats: ...
    def flush_remote_writes(self, timeout_s: float = 10.0) -> bool: ...
    def check_invariants(self) -> None: ...

# ---- attention ----------------------------------------------------------------------------------
class Backend:
    AUTO: Backend
    CPU: Backend
    CUDA: Backend
    def __init__(self, name: Union[str, int]) -> None: ...

_BackendLike = Union[Backend, str]

def attention_built_with_cuda() -> bool: ...
def cuda_device_available() -> bool: ...

class CpuWorkerPool:
    def __init__(self, num_threads: int = 0) -> None: ...
    @property
    def num_threads(self) -> int: ...

def write_kv(kv_cache: np.ndarray, layer_in_group: int, slot_mapping: _IntArray,
             key: npt.ArrayLike, value: npt.ArrayLike) -> None: ...
def paged_attention_decode(kv_cache: np.ndarray, layer_in_group: int, q: np.ndarray,
                           page_indptr: _IntArray, page_indices: _IntArray,
                           last_page_len: _IntArray, *, softmax_scale: float = 0.0,
                           window_tokens: int = 0, out: Optional[np.ndarray] = None,
                           cpu_pool: Optional[CpuWorkerPool] = None) -> np.ndarray: ...
def paged_attention_extend(kv_cache: np.ndarray, layer_in_group: int, q: np.ndarray,
                           qo_indptr: _IntArray, page_indptr: _IntArray,
                           page_indices: _IntArray, last_page_len: _IntArray, *,
                           softmax_scale: float = 0.0, window_tokens: int = 0,
                           out: Optional[np.ndarray] = None,
                           cpu_pool: Optional[CpuWorkerPool] = None) -> np.ndarray: ...
def copy_blocks(kv_cache: np.ndarray, pairs: _Pairs) -> None: ...
def swap_blocks(src_cache: np.ndarray, dst_cache: np.ndarray, pairs: _Pairs) -> None: ...

class raw:
    """Kernels on raw addresses (ints), e.g. tensor.data_ptr(); see docs/python.md."""
    class PagedKVView:
        pool: int
        dtype: DType
        num_blocks: int
        block_stride_elems: int
        layer_offset_elems: int
        num_kv_heads: int
        head_dim: int
        block_size: int
        batch_size: int
        page_indptr: int
        page_indices: int
        last_page_len: int
        num_slots: int
        slot_mapping: int
        def __init__(self, *, pool: int, dtype: _DTypeLike, num_blocks: int,
                     layers_in_group: int, layer_in_group: int, num_kv_heads: int,
                     head_dim: int, block_size: int) -> None: ...
    @staticmethod
    def write_kv(view: raw.PagedKVView, key: int, value: int, *, backend: _BackendLike = ...,
                 stream: int = 0) -> None: ...
    @staticmethod
    def paged_attention_decode(view: raw.PagedKVView, q: int, out: int, *, dtype: _DTypeLike,
                               num_q_heads: int, num_tokens: int, qo_indptr: int = 0,
                               softmax_scale: float = 0.0, window_tokens: int = 0,
                               backend: _BackendLike = ..., stream: int = 0,
                               max_kv_len_hint: int = 0) -> None: ...
    @staticmethod
    def paged_attention_extend(view: raw.PagedKVView, q: int, out: int, *, dtype: _DTypeLike,
                               num_q_heads: int, num_tokens: int, qo_indptr: int,
                               softmax_scale: float = 0.0, window_tokens: int = 0,
                               backend: _BackendLike = ..., stream: int = 0,
                               max_kv_len_hint: int = 0) -> None: ...
    @staticmethod
    def copy_blocks(pool: int, bytes_per_block: int, num_blocks: int, pairs: _Pairs, *,
                    backend: _BackendLike = ..., stream: int = 0) -> None: ...
    @staticmethod
    def swap_blocks(src_pool: int, src_num_blocks: int, dst_pool: int, dst_num_blocks: int,
                    bytes_per_block: int, pairs: _Pairs, *, backend: _BackendLike = ...,
                    stream: int = 0) -> None: ...

# ---- scheduler (present when the scheduler area is built) ----------------------------------------
class PolicyKind:
    PAGED: PolicyKind
    CONTIGUOUS_MAX: PolicyKind
    CONTIGUOUS_REALLOC: PolicyKind
    ORCA_MAX: PolicyKind
    ORCA_POW2: PolicyKind
    ORCA_ORACLE: PolicyKind
    def __init__(self, name: Union[str, int]) -> None: ...
    @property
    def label(self) -> str: ...

class PolicyConfig:
    kind: PolicyKind
    model: ModelSpec
    block_size_tokens: int
    capacity_tokens: int
    host_capacity_tokens: int
    gpu_tier: Tier
    max_model_len: int
    max_new_tokens: int
    watermark: float
    enable_prefix_caching: bool
    def __init__(self, **fields: object) -> None: ...

class AdmitRequest:
    prompt_tokens: int
    output_tokens: int
    stored_tokens: int
    num_seqs: int
    max_chunk_tokens: int
    def __init__(self, **fields: object) -> None: ...

class AdmitCheck:
    fits: bool
    ever_fits: bool
    cached_tokens: int

class KvMemoryStats:
    capacity_tokens: int
    used_tokens: int
    reserved_unused_tokens: int
    internal_frag_tokens: int
    external_frag_tokens: int
    shared_saved_tokens: int
    cached_tokens: int

class KvPolicyCounters:
    copy_bytes: int
    swap_out_bytes: int
    swap_in_bytes: int
    prefix_query_tokens: int
    prefix_hit_tokens: int

class KvCachePolicy:
    @property
    def kind(self) -> PolicyKind: ...
    def can_admit(self, request: AdmitRequest, tokens: _IntArray) -> AdmitCheck: ...
    def can_append(self, seq_id: int, num_tokens: int = 1) -> bool: ...
    def supports_swap(self) -> bool: ...
    def allocates_prefill_by_chunk(self) -> bool: ...
    def memory_stats(self, next_admission: Optional[AdmitRequest] = None) -> KvMemoryStats: ...
    def counters(self) -> KvPolicyCounters: ...
    def block_manager(self) -> Optional[BlockManager]: ...
    def check_invariants(self) -> None: ...

def make_kv_cache_policy(config: PolicyConfig) -> KvCachePolicy: ...
def policy_kind_names() -> List[str]: ...

class PreemptionMode:
    RECOMPUTE: PreemptionMode
    SWAP: PreemptionMode
    def __init__(self, name: Union[str, int]) -> None: ...

class SchedulerConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    enable_chunked_prefill: bool
    preemption_mode: PreemptionMode
    def __init__(self, **fields: object) -> None: ...
    def validate(self) -> None: ...

class SchedulerRequest:
    request_id: int
    prompt: List[int]
    max_output_tokens: int
    num_samples: int
    beam_width: int
    def __init__(self, request_id: int, prompt: Sequence[int], max_output_tokens: int = 1,
                 num_samples: int = 1, beam_width: int = 1) -> None: ...

class ScheduledSeq:
    seq_id: int
    request_id: int
    num_query_tokens: int
    num_context_tokens: int
    is_prefill: bool
    num_samples: int

class SchedulerOutput:
    step: int
    scheduled: List[ScheduledSeq]
    cache_ops: CacheOps
    preempted_seqs: List[int]
    preempted_requests: List[int]
    swapped_in_requests: List[int]
    rejected_requests: List[int]
    rejection_causes: List[str]  # "too_long", "memory", "watermark", "token_budget", "max_num_seqs"
    finished_requests: List[int]
    num_batched_tokens: int
    num_prefill_tokens: int
    num_decode_tokens: int
    num_cached_prompt_tokens: int
    copy_bytes: int
    swap_bytes: int
    def empty(self) -> bool: ...

class StepCompletion:
    first_token_requests: List[int]
    finished_requests: List[int]
    tokens_generated: int

class Scheduler:
    def __init__(self, config: SchedulerConfig, policy: KvCachePolicy) -> None: ...
    def add_request(self, request: SchedulerRequest) -> None: ...
    def step(self) -> SchedulerOutput: ...
    def complete_step(self, out: SchedulerOutput, tokens: Sequence[int],
                      beams: Optional[Dict[int, Sequence[int]]] = None) -> StepCompletion: ...
    def has_work(self) -> bool: ...
    num_waiting: int
    num_running: int
    num_swapped: int
    num_running_seqs: int
    total_preemptions: int
    def num_preemptions(self, request_id: int) -> int: ...
    def sequence_tokens(self, seq_id: int) -> List[int]: ...
    def request_seq_ids(self, request_id: int) -> List[int]: ...
    @property
    def config(self) -> SchedulerConfig: ...
    @property
    def policy(self) -> KvCachePolicy: ...
    def check_invariants(self) -> None: ...

class GpuSpec:
    name: str
    description: str
    peak_flops_per_s: float
    hbm_bytes_per_s: float
    host_link_bytes_per_s: float
    memory_bytes: int
    step_overhead_s: float
    def __init__(self) -> None: ...
    @staticmethod
    def preset(name: str) -> GpuSpec: ...
    @staticmethod
    def preset_names() -> List[str]: ...

class ModelCompute:
    num_params: float
    weight_bytes: int
    num_attention_layers: int
    q_width: int
    kv_bytes_per_token: int
    def __init__(self) -> None: ...
    @staticmethod
    def for_model(spec: ModelSpec) -> ModelCompute: ...
    @staticmethod
    def from_params(spec: ModelSpec, num_params: float, bytes_per_param: float) -> ModelCompute: ...

class Request:
    request_id: int
    arrival_time_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_block_hashes: List[int]
    hash_block_tokens: int
    num_samples: int
    beam_width: int
    def __init__(self, **fields: object) -> None: ...

class Workload:
    name: str
    requests: List[Request]
    source: str
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    def total_prompt_tokens(self) -> int: ...
    def total_output_tokens(self) -> int: ...
    def __len__(self) -> int: ...

def load_workload(spec: str, *, rate_scale: float = 1.0, max_requests: int = 0,
                  seed: int = 1) -> Workload: ...
def vendored_trace_names() -> List[str]: ...

class SimulatorConfig:
    model: ModelSpec
    gpu: GpuSpec
    compute: ModelCompute
    policy: PolicyKind
    block_size_tokens: int
    scheduler: SchedulerConfig
    kv_budget_bytes: int
    gpu_memory_bytes: int
    gpu_memory_fraction: float
    swap_space_bytes: int
    max_model_len: int
    max_new_tokens: int
    watermark: float
    enable_prefix_caching: bool
    seed: int
    max_timeline_rows: int
    def __init__(self, **fields: object) -> None: ...

class PolicySummary:
    policy: str
    requests_total: int
    requests_completed: int
    requests_rejected: int
    makespan_s: float
    throughput_requests_per_s: float
    throughput_tokens_per_s: float
    ttft_p50_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p99_s: float
    mean_batch_size: float
    max_batch_size: int
    kv_utilization_mean: float
    internal_fragmentation_mean: float
    prefix_hit_rate: float
    preemptions: int
    swap_bytes: int
    copy_bytes: int
    capacity_tokens: int
    num_steps: int

class RequestRecord:
    request_id: int
    arrival_s: float
    first_token_s: float
    finish_s: float
    preemptions: int
    rejected: bool

class PolicyRunResult:
    summary: PolicySummary
    requests: List[RequestRecord]

def simulate(workload: Workload, config: SimulatorConfig) -> PolicyRunResult: ...
