"""`python3 -m pagedkv.engine`: --help, no mode, and a small --demo with --compare-dense and
--speculative (a toy model, so it runs in seconds)."""

import os
import re
import subprocess
import sys

from engine_util import torch  # noqa: F401  (skips without PyTorch)

import pagedkv

SMALL = ["--layers", "2", "--hidden", "64", "--intermediate", "128", "--heads", "4",
         "--kv-heads", "2", "--head-dim", "16", "--vocab", "256"]


def run(args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(pagedkv.__file__)), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pagedkv.engine"] + args, capture_output=True,
                          text=True, env=env, timeout=300)


def fields(text):
    return dict(re.findall(r"(\w+)=(\S+)", text))


def test_help_and_no_mode():
    out = run(["--help"])
    assert out.returncode == 0, out.stderr
    for flag in ("--demo", "--compare-dense", "--speculative", "--checkpoint", "--preemption"):
        assert flag in out.stdout
    out = run([])
    assert out.returncode == 2 and "--demo" in out.stdout


def test_demo_compare_dense_and_speculative():
    # 28 pages of 16 tokens: small enough that this seeded batch preempts.
    out = run(["--demo", "--requests", "16", "--max-prompt", "300", "--max-new-tokens", "16",
               "--gpu-blocks", "28", "--compare-dense", "--dense-batch", "4",
               "--dense-new-tokens", "8", "--speculative", "3", "--spec-requests", "6"] + SMALL)
    assert out.returncode == 0, out.stdout + out.stderr
    f = fields(out.stdout)
    assert int(f["finished"]) == 16 and int(f["rejected"]) == 0
    assert float(f["tokens_per_s"]) > 0 and float(f["decode_tokens_per_s"]) > 0
    assert int(f["prefix_hit_tokens"]) > 0
    assert int(f["preemptions"]) > 0
    assert int(f["cow_pages"]) > 0
    assert 0 < float(f["bookkeeping_share"]) < 1
    assert f["same_tokens"] == "True"
    assert float(f["paged_decode_tokens_per_s"]) > 0 and float(f["dense_decode_tokens_per_s"]) > 0
    assert f["same_as_target_greedy"] == "True"
