"""examples/python_engine.py end to end (prefill, decode, beams, preemption, dense check)."""

import os
import pathlib
import subprocess
import sys

import pytest

import pagedkv

ROOT = pathlib.Path(os.environ.get("PAGEDKV_SOURCE_DIR", pathlib.Path(__file__).parents[2]))


@pytest.mark.skipif("scheduler" not in pagedkv.bound_areas or
                    "attention" not in pagedkv.bound_areas,
                    reason="the example needs the scheduler and attention bindings")
@pytest.mark.parametrize("preemption", ["swap", "recompute"])
def test_python_engine_example(preemption):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(pagedkv.__file__)), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "python_engine.py"),
                          "--requests", "16", "--preemption", preemption],
                         capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    fields = dict(kv.split("=") for kv in run.stdout.split())
    assert int(fields["finished"]) + int(fields["rejected"]) == 16
    assert int(fields["preempted_seqs"]) > 0, run.stdout  # the pool is small on purpose
    assert int(fields["cow_copies"]) > 0 or preemption == "recompute", run.stdout
    # Prefix hits served from pages a forward pass computed: attention through them matches dense.
    assert int(fields["cached_prompt_tokens"]) > 0, run.stdout
    assert float(fields["max_abs_err"]) < 1e-4
    if preemption == "swap":
        assert int(fields["swap_out_blocks"]) > 0, run.stdout
