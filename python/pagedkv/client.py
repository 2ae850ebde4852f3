"""pagedkv.client: the Python client of `pagedkv serve` (the pagedkv.v1 KvCache gRPC service).

The same calls as the C++ client (include/pagedkv/service/client.h): a Client is one channel (a
Unix socket, or TCP with a bearer token); a Session is one engine's session on one model; a
StepBuilder assembles one Step's ops and batch; Session.map_pools() maps the server's shared pools
as NumPy arrays, the very pages the page tables name. docs/service.md explains the protocol.

    import pagedkv.client as kv
    with kv.local_server(model="qwen2.5-1.5b", gpu_blocks=64, gpu_tier="virtual") as server:
        client = kv.Client(server.target)
        session = client.open_session(client_name="engine")
        r = session.step(kv.StepBuilder().add(1, [11, 12, 13]).batch(1, num_new_tokens=3))
        r.raise_for_error()
        print(r.layouts[0].slot_mapping)        # where the 3 tokens' K/V go
        session.close()

Errors: a failed call raises ServiceError with the server's gRPC code and message (the same code
and message as the C++ client's absl::Status); a failed op does not raise: its status is in
StepResult.statuses (raise_for_error() raises the first one).
"""

import contextlib
import json
import mmap
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import grpc
import numpy as np

from .v1 import kvcache_pb2 as pb
from .v1 import kvcache_pb2_grpc as pb_grpc

__all__ = ["Client", "Session", "StepBuilder", "StepResult", "Layout", "SharedPools",
           "ServiceError", "local_server", "pb"]

# grpc.StatusCode by number (the absl / gRPC numbering the protocol uses).
_CODES = {c.value[0]: c for c in grpc.StatusCode}

_DTYPES = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16, "fp8_e4m3": np.uint8,
           "int8": np.int8}


class ServiceError(Exception):
    """A failed call or op: `code` (grpc.StatusCode) and the server's `message`."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _status(proto_status):
    """(grpc.StatusCode, message) of a pagedkv.v1.Status."""
    return _CODES.get(proto_status.code, grpc.StatusCode.UNKNOWN), proto_status.message


# A page table of one KV group (BatchLayout), as NumPy arrays (int32; slot_mapping int64).
Layout = namedtuple("Layout", "group block_size batch_size page_indptr page_indices "
                              "last_page_len first_page_token query_indptr slot_mapping")


def _layout(m):
    i32 = lambda b: np.frombuffer(b, dtype="<i4").copy()  # noqa: E731
    return Layout(m.group, m.block_size, m.batch_size, i32(m.page_indptr), i32(m.page_indices),
                  i32(m.last_page_len), i32(m.first_page_token), i32(m.query_indptr),
                  np.frombuffer(m.slot_mapping, dtype="<i8").copy())


class StepResult:
    """A Step's answer.

    statuses: [(grpc.StatusCode, message)] one per op; op_results: the OpResult messages;
    ops: one dict per group {"group", "bytes_per_block", "swap_out", "swap_in", "copies"} with
    [n, 2] uint32 (src, dst) arrays; ops_executed_by_server: True when the server already ran
    them on the shared pools (do not run them again); batch_status; layouts: one Layout per
    requested group; step: the session's step counter.
    """

    def __init__(self, response):
        self.response = response
        self.statuses = [_status(r.status) for r in response.results]
        self.op_results = list(response.results)
        pairs = lambda b: np.frombuffer(b, dtype="<u4").reshape(-1, 2).copy()  # noqa: E731
        self.ops = [{"group": g.group, "bytes_per_block": g.bytes_per_block,
                     "swap_out": pairs(g.swap_out), "swap_in": pairs(g.swap_in),
                     "copies": pairs(g.copies)} for g in response.cache_ops]
        self.ops_executed_by_server = response.cache_ops_executed
        self.batch_status = _status(response.batch_status)
        self.layouts = [_layout(m) for m in response.layouts]
        self.step = response.step

    @property
    def ok(self):
        """True when every op and the batch succeeded."""
        return all(c == grpc.StatusCode.OK for c, _ in self.statuses + [self.batch_status])

    def raise_for_error(self):
        """Raises ServiceError for the first failed op (or the batch); returns self otherwise."""
        for code, message in self.statuses + [self.batch_status]:
            if code != grpc.StatusCode.OK:
                raise ServiceError(code, message)
        return self


class StepBuilder:
    """Assembles one Step request; each method returns the builder. Ids are the session's own."""

    def __init__(self):
        self.request = pb.StepRequest()

    def add(self, seq, prompt, extra_key=0, encoder_key=None):
        op = self.request.ops.add().add
        op.seq, op.extra_key = seq, extra_key
        op.prompt.extend(int(t) for t in prompt)
        if encoder_key is not None:
            op.encoder_key = encoder_key
        return self

    def append(self, seq, tokens):
        op = self.request.ops.add().append
        op.seq = seq
        op.tokens.extend(int(t) for t in tokens)
        return self

    def append_batch(self, seqs, tokens):
        op = self.request.ops.add().append_batch
        op.seqs.extend(int(s) for s in seqs)
        op.tokens.extend(int(t) for t in tokens)
        return self

    def mark_computed(self, seqs, num_computed_tokens):
        op = self.request.ops.add().mark_computed
        op.seqs.extend(int(s) for s in seqs)
        op.num_computed_tokens.extend(int(n) for n in num_computed_tokens)
        return self

    def fork(self, parent, child):
        op = self.request.ops.add().fork
        op.parent, op.child = parent, child
        return self

    def reorder_beams(self, beams, parent_indices):
        op = self.request.ops.add().reorder_beams
        op.beams.extend(int(b) for b in beams)
        op.parent_indices.extend(int(p) for p in parent_indices)
        return self

    def rewind(self, seq, num_tokens):
        op = self.request.ops.add().rewind
        op.seq, op.num_tokens = seq, num_tokens
        return self

    def free(self, seqs):
        self.request.ops.add().free.seqs.extend(int(s) for s in seqs)
        return self

    def swap_out(self, seqs):
        self.request.ops.add().swap_out.seqs.extend(int(s) for s in seqs)
        return self

    def swap_in(self, seqs):
        self.request.ops.add().swap_in.seqs.extend(int(s) for s in seqs)
        return self

    def set_cross_attention(self, seq, encoder_tokens):
        op = self.request.ops.add().set_cross_attention
        op.seq, op.encoder_tokens = seq, encoder_tokens
        return self

    def batch(self, seq, num_new_tokens=1, num_context_tokens=None):
        """One batch entry; num_context_tokens None = every token of the table."""
        e = self.request.batch.add()
        e.seq, e.num_new_tokens = seq, num_new_tokens
        if num_context_tokens is not None:
            e.num_context_tokens = num_context_tokens
        return self

    def groups(self, groups):
        self.request.groups.extend(int(g) for g in groups)
        return self

    def stop_at_first_error(self, stop=True):
        self.request.stop_at_first_error = stop
        return self


class Client:
    """One channel to a server: target "unix:/path/serve.sock" or "host:port" (then `token`).

    Every call has a deadline of `timeout` seconds and raises ServiceError on failure.
    """

    def __init__(self, target, token=None, timeout=10.0, max_message_bytes=64 << 20):
        if not target:
            raise ValueError("empty target; give 'unix:/path/to/serve.sock' or 'host:port'")
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.KvCacheStub(self._channel)

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise ServiceError(e.code(), e.details()) from None

    def open_session(self, model="", client_name="", gpu_block_quota=0, host_block_quota=0,
                     lease_seconds=0.0, cache_namespace=""):
        """Opens a session (quotas 0 = the whole pool, lease 0 = the server's default)."""
        info = self._call(self._stub.OpenSession, pb.OpenSessionRequest(
            model=model, client_name=client_name, gpu_block_quota=gpu_block_quota,
            host_block_quota=host_block_quota, lease_seconds=lease_seconds,
            cache_namespace=cache_namespace))
        return Session(self, info)

    def step(self, request):
        """A raw Step (the request carries its session); returns the StepResponse message."""
        return self._call(self._stub.Step, request)

    def keep_alive(self, session_ref):
        return self._call(self._stub.KeepAlive, pb.KeepAliveRequest(session=session_ref))

    def close_session(self, session_ref):
        return self._call(self._stub.CloseSession, pb.CloseSessionRequest(session=session_ref))

    def stats(self, session_ref=None, check_invariants=False, model=""):
        request = pb.StatsRequest(check_invariants=check_invariants, model=model)
        if session_ref is not None:
            request.session.CopyFrom(session_ref)
        return self._call(self._stub.Stats, request)

    def describe_model(self, model=""):
        return self._call(self._stub.DescribeModel, pb.DescribeModelRequest(model=model))

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Session:
    """One engine's session: its own sequence ids, quotas and lease (see Client.open_session)."""

    def __init__(self, client, info):
        self.client = client
        self.info = info  # the OpenSessionResponse
        self.ref = info.session
        self.model = info.model

    def step(self, builder):
        """Sends a StepBuilder's request with this session's credentials; a StepResult."""
        request = builder.request if isinstance(builder, StepBuilder) else builder
        request.session.CopyFrom(self.ref)
        return StepResult(self.client.step(request))

    def keep_alive(self):
        return self.client.keep_alive(self.ref).lease_seconds

    def close(self):
        """Frees every sequence and ends the session; the number of sequences freed."""
        return self.client.close_session(self.ref).freed_sequences

    def stats(self, check_invariants=False):
        return self.client.stats(self.ref, check_invariants, self.model.name)

    def map_pools(self):
        """The model's shared pools mapped into this process (see SharedPools)."""
        if not self.info.pool_socket:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                               "this server has no pool socket (TCP only); shared pools need "
                               "the Unix socket on the same machine")
        return SharedPools.fetch(self.info.pool_socket, self.ref)


def _recv_exact(sock, n, fds, max_fds=64):
    """n bytes from sock; descriptors that arrive on the way are appended to fds."""
    data = b""
    while len(data) < n:
        chunk, ancdata, _, _ = sock.recvmsg(n - len(data), socket.CMSG_SPACE(max_fds * 4))
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(cdata) // 4}i", cdata[:len(cdata) // 4 * 4]))
        if not chunk:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "pool socket closed early")
        data += chunk
    return data


class SharedPools:
    """The pools of a session's model, mapped from the memfds the pool socket passes.

    pools: {(group, "gpu"|"host"): array} with each array shaped
    [num_blocks, layers_in_group, 2 (K, V), num_kv_heads, block_size, head_dim] over the shared
    memory (dtype float32 / float16; uint16 bits for bf16): the pages the page tables name, so
    pagedkv.write_kv and pagedkv.attention_decode run on them directly. handles: the PoolHandle
    messages.
    """

    def __init__(self, model, handles, arrays, maps):
        self.model = model
        self.handles = handles
        self.pools = arrays
        self._maps = maps

    def __getitem__(self, key):
        return self.pools[key]

    def get(self, group, tier="gpu"):
        return self.pools.get((group, tier))

    @staticmethod
    def fetch(path, session_ref, timeout=10.0):
        request = pb.PoolHandlesRequest(session=session_ref).SerializeToString()
        fds = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(struct.pack("<I", len(request)) + request)
            (length,) = struct.unpack("<I", _recv_exact(sock, 4, fds))
            reply = pb.PoolHandlesReply.FromString(_recv_exact(sock, length, fds))
        try:
            code, message = _status(reply.status)
            if code != grpc.StatusCode.OK:
                raise ServiceError(code, message)
            arrays, maps = {}, []
            for h in reply.handles.pools:
                if h.fd_index < 0:
                    continue  # not shareable (a virtual pool)
                m = mmap.mmap(fds[h.fd_index], h.map_bytes, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
                maps.append(m)
                lay = h.layout
                dtype = np.dtype(_DTYPES[lay.dtype])
                shape = (h.num_blocks, lay.num_layers, 2, lay.num_kv_heads, lay.block_size,
                         lay.head_dim)
                count = int(np.prod(shape))
                arrays[(h.group, h.tier)] = np.frombuffer(m, dtype=dtype, count=count,
                                                          offset=h.offset_bytes).reshape(shape)
            return SharedPools(reply.handles.model, list(reply.handles.pools), arrays, maps)
        finally:
            for fd in fds:
                os.close(fd)


def _find_cli():
    """The `pagedkv` binary: $PAGEDKV_CLI, the build tree this module sits in, or PATH."""
    if os.environ.get("PAGEDKV_CLI"):
        return os.environ["PAGEDKV_CLI"]
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "tools" / "pagedkv",):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("pagedkv")
    if found:
        return found
    raise FileNotFoundError("no pagedkv binary: set PAGEDKV_CLI or put pagedkv on PATH")


class _LocalServer:
    def __init__(self, process, directory, ready):
        self.process = process
        self.directory = directory
        self.socket = ready["socket"]
        self.pool_socket = ready["pool_socket"]
        self.tcp_port = ready["tcp_port"]
        self.pid = ready["pid"]
        self.target = "unix:" + self.socket

    def stop(self, timeout=30.0):
        """SIGTERM (drains the calls in flight); returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)


@contextlib.contextmanager
def local_server(model=None, gpu_blocks=None, host_blocks=0, block_size=16,
                 gpu_tier="gpu", config=None, extra_args=(), cli=None, startup_timeout=30.0):
    """Runs `pagedkv serve` on a private temporary socket for the `with` block (tests, notebooks).

    Either model (a preset or a model JSON path) and gpu_blocks, or config (a serve.json path).
    Yields an object with .target, .socket, .pool_socket, .pid and .stop(); stops the server
    with SIGTERM at the end of the block.
    """
    directory = tempfile.mkdtemp(prefix="pkv-")
    ready_path = os.path.join(directory, "ready.json")
    argv = [cli or _find_cli(), "serve", "--socket", os.path.join(directory, "kv.sock"),
            "--ready-file", ready_path]
    if config is not None:
        argv += ["--config", str(config)]
    else:
        argv += ["--model", str(model), "--gpu-blocks", str(gpu_blocks), "--host-blocks",
                 str(host_blocks), "--block-size", str(block_size), "--gpu-tier", gpu_tier]
    argv += list(extra_args)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while not os.path.exists(ready_path):
            if process.poll() is not None:
                raise RuntimeError(f"pagedkv serve exited with {process.returncode}; see stderr")
            if time.monotonic() > deadline:
                raise TimeoutError("pagedkv serve did not start in time")
            time.sleep(0.02)
        with open(ready_path) as f:
            server = _LocalServer(process, directory, json.load(f))
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
