"""The Python client against the real `pagedkv serve` binary: every RPC and its errors, isolation
between sessions, quotas, TCP with a bearer token, the shared pools, two Python engine processes
writing and reading their own tokens through the shared pool at once, and the example engine.

Run by CTest (service_python_client) with PYTHONPATH at the build tree's package and PAGEDKV_CLI
at the built binary.
"""

import json
import os
import pathlib
import subprocess
import sys

import grpc
import numpy as np
import pytest

import pagedkv.client as kv

HERE = pathlib.Path(__file__).resolve().parent
ROOT = pathlib.Path(os.environ.get("PAGEDKV_SOURCE_DIR", HERE.parents[2]))
TOY = {"name": "toy", "num_q_heads": 4, "num_kv_heads": 2, "head_dim": 16, "kv_dtype": "fp32",
       "num_layers": 2}


@pytest.fixture
def toy_model():
    """The model docs/python.md runs examples/service_engine.py with (TOY, shipped)."""
    path = ROOT / "examples" / "toy.json"
    assert json.loads(path.read_text()) == TOY
    return path


@pytest.fixture
def server(toy_model):
    with kv.local_server(model=toy_model, gpu_blocks=64, host_blocks=32, block_size=4,
                         extra_args=["--quarantine-seconds", "1"]) as s:
        yield s


def invariants_ok(client):
    stats = client.stats(check_invariants=True)
    assert stats.invariants.code == 0, stats.invariants.message
    return stats


def test_every_rpc(server):
    client = kv.Client(server.target)
    described = client.describe_model()
    assert described.model.name == "toy" and list(described.served_models) == ["toy"]
    assert described.model.pools[0].kind == kv.pb.POOL_KIND_MEMFD
    session = client.open_session(client_name="py", lease_seconds=5)
    assert session.info.lease_seconds == 5 and len(session.ref.secret) == 16
    r = session.step(kv.StepBuilder().add(1, [5, 6, 7, 8, 9]).batch(1, num_new_tokens=5))
    r.raise_for_error()
    assert r.step == 1 and r.ops_executed_by_server
    lay = r.layouts[0]
    assert list(lay.page_indptr) == [0, 2] and list(lay.last_page_len) == [1]
    assert list(lay.slot_mapping) == [lay.page_indices[t // 4] * 4 + t % 4 for t in range(5)]
    assert session.keep_alive() == 5
    stats = session.stats(check_invariants=True)
    assert stats.session.num_sequences == 1 and stats.session.gpu_blocks_used == 2
    assert stats.invariants.code == 0
    r = session.step(kv.StepBuilder().mark_computed([1], [5]).fork(1, 2).append(2, [3])
                     .append_batch([1], [4]).rewind(1, 5).reorder_beams([1, 2], [1, 1])
                     .swap_out([1]).swap_in([1]).free([2]).batch(1))
    r.raise_for_error()
    assert len(r.ops[0]["copies"]) == 1  # copy-on-write when sequence 2 wrote its shared page
    assert session.close() == 1
    with pytest.raises(kv.ServiceError) as e:
        session.keep_alive()
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert invariants_ok(client).sessions_closed == 1


def test_op_errors_have_their_codes_and_change_nothing(server):
    client = kv.Client(server.target)
    a = client.open_session(client_name="a", gpu_block_quota=4)
    a.step(kv.StepBuilder().add(1, list(range(10)))).raise_for_error()
    before = a.stats().models[0].pools[0]
    cases = [
        (kv.StepBuilder().add(1, [1]), "ALREADY_EXISTS", "already exists"),
        (kv.StepBuilder().append(9, [1]), "NOT_FOUND", "sequence 9 is not known"),
        (kv.StepBuilder().append_batch([1, 1], [1, 2]), "INVALID_ARGUMENT", "listed twice"),
        (kv.StepBuilder().fork(1, 1), "INVALID_ARGUMENT", "parent and child"),
        (kv.StepBuilder().rewind(1, 99), "INVALID_ARGUMENT", ""),
        (kv.StepBuilder().swap_in([1]), "FAILED_PRECONDITION", "not swapped out"),
        (kv.StepBuilder().add(2, list(range(8))), "RESOURCE_EXHAUSTED", "quota of 4"),
        (kv.StepBuilder().add(3, list(range(1000))), "INVALID_ARGUMENT", "can never fit"),
    ]
    for builder, code, text in cases:
        r = a.step(builder)
        assert r.statuses[0][0].name == code, r.statuses
        assert text in r.statuses[0][1]
        with pytest.raises(kv.ServiceError):
            r.raise_for_error()
    assert a.stats().models[0].pools[0] == before
    with pytest.raises(kv.ServiceError) as e:
        a.step(kv.StepBuilder().add(5, [1]).groups([7]))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    invariants_ok(client)


def test_sessions_are_isolated(server):
    client = kv.Client(server.target)
    a = client.open_session(client_name="a")
    b = client.open_session(client_name="b")
    a.step(kv.StepBuilder().add(7, [1, 2, 3])).raise_for_error()
    seen = b.step(kv.StepBuilder().append(7, [1])).statuses[0]
    never = b.step(kv.StepBuilder().append(8, [1])).statuses[0]
    assert seen[0] == never[0] == grpc.StatusCode.NOT_FOUND
    assert seen[1] == never[1].replace("8", "7")
    b.step(kv.StepBuilder().add(7, [9])).raise_for_error()  # b's own 7
    assert a.stats().session.num_sequences == 1
    forged = kv.pb.SessionRef(session_id=a.ref.session_id, secret=b"x" * 16)
    with pytest.raises(kv.ServiceError) as e:
        client.keep_alive(forged)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(kv.ServiceError) as e:
        kv.SharedPools.fetch(server.pool_socket, forged)
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_tcp_needs_the_token(toy_model, tmp_path):
    token = tmp_path / "token"
    token.write_text("py-secret\n")
    token.chmod(0o600)
    with kv.local_server(model=toy_model, gpu_blocks=16, block_size=4,
                         extra_args=["--listen", "127.0.0.1:0", "--token-file", str(token)]) as s:
        tcp = f"127.0.0.1:{s.tcp_port}"
        for bad in (None, "wrong"):
            with pytest.raises(kv.ServiceError) as e:
                kv.Client(tcp, token=bad).describe_model()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        session = kv.Client(tcp, token="py-secret").open_session(client_name="tcp")
        session.step(kv.StepBuilder().add(1, [1, 2])).raise_for_error()
        pools = session.map_pools()  # same machine: the pool socket works for a TCP session
        assert pools.get(0, "gpu").shape == (16, 2, 2, 2, 4, 16)


def test_shared_pools_are_the_same_pages(server):
    client = kv.Client(server.target)
    a, b = client.open_session(), client.open_session()
    pa, pb = a.map_pools(), b.map_pools()
    ga, gb = pa.get(0, "gpu"), pb.get(0, "gpu")
    assert ga.shape == (64, 2, 2, 2, 4, 16) and ga.dtype == np.float32
    assert pa.get(0, "host").shape[0] == 32
    ga[5, 1, 0, 1, 2, 3] = 42.5
    assert gb[5, 1, 0, 1, 2, 3] == 42.5


def test_two_python_engines_read_back_their_own_tokens(server):
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, str(HERE / "data_engine.py"), server.target,
                               str(seed), "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for seed in (3, 4)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
        assert out.startswith("ok "), out
    stats = invariants_ok(kv.Client(server.target))
    assert stats.models[0].num_sequences == 0
    assert stats.models[0].pools[0].gpu_in_use_blocks == 0


def test_example_engine(server):
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "service_engine.py"),
                          "--target", server.target, "--requests", "12"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    fields = dict(kv_.split("=") for kv_ in run.stdout.split())
    assert int(fields["finished"]) == 12 and int(fields["blocks_left"]) == 0
    assert int(fields["forks"]) > 0 and int(fields["cow_copies"]) > 0
    assert float(fields["max_abs_err"]) < 1e-4
