"""`pagedkv serve` in production, against the real binary: the Prometheus endpoint (promtool and a
real Prometheus server scraping it on loopback), the KV events for routers (a subscriber that
rebuilds the prefix index from the event stream alone, across a forced gap filled by replay), the
remote tier's counters (memory:// store) and serve.json with every section.

Run by CTest (service_python_ops) with PYTHONPATH at the build tree's package and PAGEDKV_CLI at
the built binary. Tests that need promtool, prometheus, pyzmq or msgpack skip with the reason.
"""

import collections
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

import pagedkv.client as kv

TOY = {"name": "toy", "num_q_heads": 4, "num_kv_heads": 2, "head_dim": 16, "kv_dtype": "fp32",
       "num_layers": 2}
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


@pytest.fixture
def toy_model(tmp_path):
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(TOY))
    return path


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        return r.read().decode()


def sample(text, name, **labels):
    """The value of the sample `name{labels}` (labels: a subset that must match), or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        have = dict(kv_.split("=", 1) for kv_ in rest.rstrip("}").split(",") if kv_)
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return None


def run_steps(session, first_seq, prompts):
    """Adds each prompt, writes it, marks it computed (its full pages are then published)."""
    for i, prompt in enumerate(prompts):
        seq = first_seq + i
        session.step(kv.StepBuilder().add(seq, prompt).batch(seq, num_new_tokens=len(prompt))
                     ).raise_for_error()
        session.step(kv.StepBuilder().mark_computed([seq], [len(prompt)])).raise_for_error()


def test_metrics_endpoint_passes_promtool_and_counts_what_happened(toy_model):
    with kv.local_server(model=toy_model, gpu_blocks=32, host_blocks=16, block_size=4,
                         extra_args=["--metrics-address", "127.0.0.1:0"]) as s:
        assert s.metrics_port > 0
        client = kv.Client(s.target)
        session = client.open_session(client_name="metrics")
        run_steps(session, 1, [[1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 8, 10]])
        with pytest.raises(kv.ServiceError):
            client.open_session(model="no-such-model")
        text = scrape(s.metrics_port)
        # Every family has HELP and TYPE; names carry the prefix.
        families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
        helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
        assert families and set(families) == helps
        assert all(f.startswith("pagedkv_") for f in families)
        for wanted in ["pagedkv_blocks", "pagedkv_block_usage_ratio", "pagedkv_sessions",
                       "pagedkv_prefix_cache_query_pages_total",
                       "pagedkv_prefix_cache_hit_pages_total", "pagedkv_swap_out_bytes_total",
                       "pagedkv_lease_expiries_total", "pagedkv_quarantined_blocks",
                       "pagedkv_rpc_duration_seconds", "pagedkv_rpc_errors_total"]:
            assert wanted in families, wanted
        assert sample(text, "pagedkv_steps_total", model="toy") == 4
        assert sample(text, "pagedkv_sessions_opened_total") == 1
        # The second prompt found its first two pages in the prefix cache.
        assert sample(text, "pagedkv_prefix_cache_hit_pages_total", model="toy", source="gpu") == 2
        assert sample(text, "pagedkv_rpc_duration_seconds_count", method="Step") == 4
        assert sample(text, "pagedkv_rpc_errors_total", method="OpenSession",
                      code="NOT_FOUND") == 1
        used = sample(text, "pagedkv_blocks", model="toy", tier="gpu", state="used", group="0")
        assert used == 4  # 3 pages each, the two shared full pages counted once
        if PROMTOOL is None:
            pytest.skip("promtool not installed (Debian package prometheus)")
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        session.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def query_prometheus(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package)")
def test_real_prometheus_scrapes_the_service(toy_model, tmp_path):
    with kv.local_server(model=toy_model, gpu_blocks=32, block_size=4,
                         extra_args=["--metrics-address", "127.0.0.1:0"]) as s:
        client = kv.Client(s.target)
        session = client.open_session(client_name="prom")
        steps = 7  # the value the query must answer
        for i in range(steps):
            session.step(kv.StepBuilder().add(100 + i, [i, i + 1])).raise_for_error()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: pagedkv\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{s.metrics_port}']\n")
        port = free_port()
        log = open(tmp_path / "prometheus.log", "w")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            result = []
            while time.monotonic() < deadline:
                assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    result = query_prometheus(port, 'pagedkv_steps_total{model="toy"}')
                except OSError:
                    result = []  # not listening yet
                if result:
                    break
                time.sleep(0.5)
            assert result, "Prometheus never scraped the service: " + \
                (tmp_path / "prometheus.log").read_text()[-3000:]
            assert float(result[0]["value"][1]) == steps
            up = query_prometheus(port, 'up{job="pagedkv"}')
            assert up and float(up[0]["value"][1]) == 1
        finally:
            prom.terminate()
            try:
                prom.wait(30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()
        session.close()


class IndexFromEvents:
    """A router's view of one model: (medium, block hash) -> count, from the KV events alone.

    Subscribes to the PUB socket; batches arrive as [topic, seq (8 bytes big-endian), payload];
    a gap in the sequence (or a batch this test drops on purpose) is filled from the replay
    socket before anything later is applied."""

    def __init__(self, zmq, msgpack, endpoint, replay_endpoint):
        self.zmq, self.msgpack = zmq, msgpack
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint)
        self.replay_endpoint = replay_endpoint
        self.index = collections.Counter()
        self.next_seq = 0
        self.replayed = 0
        self.topics = set()
        self.kinds = collections.Counter()
        self.media = collections.Counter()  # BlockStored pages per medium

    def apply(self, payload):
        ts, events = self.msgpack.unpackb(payload, raw=False)[:2]
        assert isinstance(ts, float) and ts > 1.6e9
        for event in events:
            kind = event[0]
            self.kinds[kind] += 1
            if kind == "BlockStored":
                hashes, parent, tokens, block_size, lora_id, medium = event[1:7]
                assert block_size == 4 and lora_id is None and medium in ("GPU", "CPU")
                assert len(tokens) == len(hashes) * block_size
                assert parent is None or isinstance(parent, int)
                self.media[medium] += len(hashes)
                for h in hashes:
                    self.index[(medium, h)] += 1
            elif kind == "BlockRemoved":
                hashes, medium = event[1:3]
                for h in hashes:
                    assert self.index[(medium, h)] > 0, ("removed unknown block", medium, h)
                    self.index[(medium, h)] -= 1
                    if self.index[(medium, h)] == 0:
                        del self.index[(medium, h)]
            elif kind == "AllBlocksCleared":
                self.index.clear()
            else:
                raise AssertionError(f"unknown event {event!r}")

    def replay(self, start):
        """Applies every buffered batch from `start` on (what a router does after a gap)."""
        req = self.ctx.socket(self.zmq.DEALER)
        req.connect(self.replay_endpoint)
        try:
            req.send_multipart([b"", start.to_bytes(8, "big")])
            while True:
                assert req.poll(10000), "no answer from the replay endpoint"
                _, seq_bytes, payload = req.recv_multipart()
                seq = int.from_bytes(seq_bytes, "big", signed=True)
                if seq == -1:
                    return
                if seq == self.next_seq:
                    self.apply(payload)
                    self.next_seq += 1
                    self.replayed += 1
        finally:
            req.close(linger=0)

    def receive(self, timeout_ms, drop=()):
        """Receives until quiet for timeout_ms. Batches whose seq is in `drop` are lost on
        purpose (a forced gap)."""
        while self.sub.poll(timeout_ms):
            topic, seq_bytes, payload = self.sub.recv_multipart()
            self.topics.add(topic)
            seq = int.from_bytes(seq_bytes, "big")
            if seq in drop or seq < self.next_seq:
                continue
            if seq > self.next_seq:
                self.replay(self.next_seq)  # the gap (ours, or the slow joiner's first batches)
            if seq == self.next_seq:
                self.apply(payload)
                self.next_seq += 1

    def close(self):
        self.sub.close(linger=0)
        self.ctx.term()


def server_index(client):
    stats = client.stats(prefix_index=True)
    return collections.Counter((p.medium, p.block_hash) for p in stats.models[0].prefix_index)


def test_subscriber_rebuilds_the_prefix_index_across_a_forced_gap(toy_model):
    zmq = pytest.importorskip("zmq", reason="python3-zmq not installed")
    msgpack = pytest.importorskip("msgpack", reason="python3-msgpack not installed")
    import random
    rng = random.Random(7)
    with kv.local_server(model=toy_model, gpu_blocks=24, host_blocks=16, block_size=4,
                         extra_args=["--events-endpoint", "tcp://127.0.0.1:0",
                                     "--events-replay-endpoint", "tcp://127.0.0.1:0",
                                     "--events-topic", "kv@test@{model}"]) as s:
        assert len(s.event_endpoints) == 1 and len(s.replay_endpoints) == 1
        sub = IndexFromEvents(zmq, msgpack, s.event_endpoints[0], s.replay_endpoints[0])
        client = kv.Client(s.target)
        session = client.open_session(client_name="router-test")
        prefixes = [[rng.randrange(500) for _ in range(8)] for _ in range(4)]
        live, next_seq, dropped = [], 1, set()
        for round_ in range(60):
            prompt = rng.choice(prefixes) + [rng.randrange(500) for _ in range(rng.randrange(9))]
            r = session.step(kv.StepBuilder().add(next_seq, prompt)
                             .batch(next_seq, num_new_tokens=len(prompt)))
            if r.ok:
                session.step(kv.StepBuilder().mark_computed([next_seq], [len(prompt)])
                             ).raise_for_error()
                live.append(next_seq)
            next_seq += 1
            # Free some (their pages stay cached, then get evicted to the host tier and dropped),
            # swap some out.
            if len(live) > 3 or not r.ok:
                victim = live.pop(rng.randrange(len(live)))
                op = kv.StepBuilder().free([victim]) if rng.random() < 0.8 else \
                    kv.StepBuilder().swap_out([victim]).free([victim])
                session.step(op).raise_for_error()
            # The forced gap: three batches in the middle never reach the subscriber.
            if round_ == 20:
                sub.receive(300)
                dropped = {sub.next_seq, sub.next_seq + 1, sub.next_seq + 2}
            sub.receive(5, drop=dropped)
        session.step(kv.StepBuilder().free(live)).raise_for_error()
        sub.receive(1000, drop=dropped)
        sub.replay(sub.next_seq)  # whatever the PUB socket has not delivered yet
        want = server_index(client)
        assert sub.replayed >= 3, "the forced gap was not filled by replay"
        assert sub.kinds["BlockStored"] > 0 and sub.kinds["BlockRemoved"] > 0
        assert sub.kinds["AllBlocksCleared"] == 1  # the first batch
        # Pages of both tiers were published (GPU evictions are offloaded to the host tier).
        assert sub.media["GPU"] > 0 and sub.media["CPU"] > 0, sub.media
        assert sub.topics == {b"kv@test@toy"}
        assert sub.index == want, (len(sub.index), len(want))
        assert len(want) > 0
        sub.close()
        session.close()


def test_remote_tier_counters_in_stats_and_metrics(toy_model):
    with kv.local_server(model=toy_model, gpu_blocks=32, host_blocks=16, block_size=4,
                         extra_args=["--remote", "memory://ops-test",
                                     "--metrics-address", "127.0.0.1:0"]) as s:
        client = kv.Client(s.target)
        session = client.open_session(client_name="remote")
        run_steps(session, 1, [[1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2, 1]])
        stats = client.stats()
        remote = stats.models[0].remote
        assert stats.models[0].HasField("remote") and remote.url == "memory://ops-test"
        assert remote.lookups + remote.lookups_skipped >= 1
        text = scrape(s.metrics_port)
        assert sample(text, "pagedkv_remote_lookups_total", model="toy") == remote.lookups
        assert sample(text, "pagedkv_remote_lookups_skipped_total",
                      model="toy") == remote.lookups_skipped
        session.close()
    with kv.local_server(model=toy_model, gpu_blocks=32, block_size=4) as s:
        assert not kv.Client(s.target).stats().models[0].HasField("remote")


def test_serve_json_with_every_section(toy_model, tmp_path):
    config = {
        "lease_seconds": 10, "quarantine_seconds": 1, "max_sessions": 8,
        "metrics_address": "127.0.0.1:0",
        "events": {"endpoint": "tcp://127.0.0.1:0", "replay_endpoint": "tcp://127.0.0.1:0"},
        "remote": "memory://cfg",
        "models": [
            {"name": "a", "model": str(toy_model), "gpu_blocks": 16, "host_blocks": 8,
             "block_size": 4},
            {"name": "b", "model": str(toy_model), "gpu_blocks": 8, "block_size": 2,
             "remote": ""},
        ],
    }
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(config))
    with kv.local_server(config=path) as s:
        assert s.metrics_port > 0 and len(s.event_endpoints) == 2
        stats = kv.Client(s.target).stats()
        assert [m.name for m in stats.models] == ["a", "b"]
        assert stats.models[0].remote.url == "memory://cfg"
        assert not stats.models[1].HasField("remote")
        text = scrape(s.metrics_port)
        assert sample(text, "pagedkv_pool_capacity_blocks", model="b", tier="gpu") == 8


@pytest.mark.parametrize("change,field,fix", [
    ({"metrics_address": "localhost"}, "metrics", "HOST:PORT"),
    ({"events": {"replay_endpoint": "tcp://127.0.0.1:1"}}, "events", "endpoint"),
    ({"events": {"endpoint": "udp://x"}}, "event endpoint", "tcp://HOST:PORT"),
    ({"remote": "ftp://x"}, "remote", "redis://"),
    ({"max_sessions": 0}, "max_sessions", ">= 1"),
    ({"lease_seconds": 0.0001}, "lease_seconds", "min_lease_seconds"),
    ({"models": [{"model": "toy", "gpu_blocks": 8, "remote": "memory://x"}]}, "models[0]",
     "host_blocks > 0"),
    ({"models": [{"model": "toy"}]}, "'gpu_blocks' is missing", "number of GPU blocks"),
])
def test_bad_serve_json_names_the_field_and_the_fix(toy_model, tmp_path, change, field, fix):
    config = {"models": [{"model": str(toy_model), "gpu_blocks": 8}]}
    config.update(change)
    if "models" in change:
        config["models"][0]["model"] = str(toy_model)
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(config))
    cli = os.environ.get("PAGEDKV_CLI") or kv._find_cli()
    r = subprocess.run([cli, "serve", "--config", str(path), "--check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert field in r.stderr and fix in r.stderr, r.stderr


def test_cuda_ipc_pool_refusals_without_a_device():
    """The Python client's CUDA IPC pools: a malformed handle is refused; on this machine (no
    GPU, maybe no CUDA runtime) opening a well-formed one fails with a ServiceError that says
    why. Opening a real pool on a GPU has never run (no device available)."""
    from pagedkv import client_cuda
    handle = kv.pb.PoolHandle(kind=kv.pb.POOL_KIND_CUDA_IPC, tier="gpu", num_blocks=4,
                              bytes_per_block=256, map_bytes=1024, cuda_ipc_handle=b"\0" * 10)
    with pytest.raises(kv.ServiceError, match="64 bytes"):
        client_cuda.DevicePool(handle, "float32")
    handle.cuda_ipc_handle = b"\0" * 64
    try:
        pool = client_cuda.DevicePool(handle, "float32")
    except kv.ServiceError as e:
        assert "CUDA" in str(e) or "cuda" in str(e)
    else:
        pool.close()
        pytest.skip("a CUDA device opened a zero handle: run the real GPU test instead")
