"""Runs the examples in README.md and docs/*.md, so the docs cannot drift from the code.

Every code block (fenced, or indented by four spaces) is collected in document order:
- `pagedkv ...` commands (also behind env assignments, `/usr/bin/time`, `taskset`, or a path that
  ends in /pagedkv) run with the built CLI in a scratch directory per document (paths under /tmp
  are moved into it); `simulate` gets `--max-requests 8 --quiet` unless it sets them (the test
  build checks every invariant after every call; whole traces are the benchmarks' job), and
  `report DIR` on a directory that does not exist yet gets a small simulation there first;
- other shell commands are checked, not run: every repository path they name (scripts/, tools/,
  benchmarks/, ...) exists, and every build target they name or run (configure_build.sh targets,
  build/<dir>/.../<binary>) is a target the CMake files define;
- a JSON block with "num_q_heads" is a model: `pagedkv size --model FILE` must accept it; any other
  JSON block must parse;
- a Python block runs in a fresh interpreter with the built module on PYTHONPATH, after the
  document's earlier Python blocks (a tour continues from block to block); skipped when the
  module was not built.
C++ blocks are fragments of larger programs and are not compiled here.

Environment (set by CTest): PAGEDKV_CLI (the binary), PAGEDKV_SOURCE_DIR, PYTHONPATH.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("PAGEDKV_SOURCE_DIR", Path(__file__).resolve().parents[2]))
CLI = os.environ.get("PAGEDKV_CLI", "")
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
SHELL_LANGS = {"sh", "bash", "shell", "console", ""}
REPO_DIRS = ("scripts/", "tools/", "benchmarks/", "tests/", "docs/", "data/", "python/",
             "examples/", "fuzz/", "service/", "proto/", ".ci/")
COMMAND_START = re.compile(
    r"^(\$ )?(pagedkv|bash|scripts/|build/|\(cd |ctest|cmake|PYTHONPATH=|PAGEDKV_|/usr/bin/|"
    r"python3|git )")


def code_blocks(path):
    """(language, first line number, text) of each code block of a markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*```(\w*)\s*$", line)
        if fence:
            j = i + 1
            while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
                j += 1
            blocks.append((fence.group(1).lower(), i + 2, "\n".join(lines[i + 1:j])))
            i = j + 1
            continue
        # An indented block: four spaces after a blank line, starting like a command.
        if line.startswith("    ") and (i == 0 or not lines[i - 1].strip()) and \
                COMMAND_START.match(line.strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            body = "\n".join(l[4:] for l in lines[i:j]).rstrip()
            blocks.append(("sh", i + 1, body))
            i = j
            continue
        i += 1
    return blocks


def shell_commands(text):
    """Logical lines of a shell block (continuations joined), comments and prompts removed."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def split_words(command):
    try:
        return shlex.split(command, comments=True)
    except ValueError as e:
        pytest.fail(f"cannot parse shell command {command!r}: {e}")


def pagedkv_argv(words):
    """The pagedkv arguments of a command line, or None when it does not run pagedkv."""
    i = 0
    while i < len(words):
        if re.match(r"^[A-Z_][A-Z0-9_]*=", words[i]) or words[i] in ("/usr/bin/time", "time"):
            i += 1  # environment assignments and timers
        elif words[i] == "taskset":
            i += 3  # taskset -c CPUS
        else:
            break
    if i < len(words) and (words[i] == "pagedkv" or words[i].endswith("/pagedkv")):
        return words[i + 1:]
    return None


def cmake_targets():
    names = set()
    pattern = re.compile(
        r"(?:add_executable|add_library|pagedkv_add_test|pagedkv_add_benchmark|"
        r"pagedkv_add_cli_test|pybind11_add_module|add_custom_target)\(\s*([A-Za-z0-9_.-]+)")
    for cm in ROOT.rglob("CMakeLists.txt"):
        if "build" in cm.relative_to(ROOT).parts[:1]:
            continue
        names.update(pattern.findall(cm.read_text(encoding="utf-8")))
    # pagedkv_add_test names each scheduler test from its file name.
    names.update("scheduler_" + p.stem for p in (ROOT / "tests/scheduler").glob("*_test.cc"))
    return names


TARGETS = None


def check_shell_references(words, where):
    global TARGETS
    if TARGETS is None:
        TARGETS = cmake_targets()
    for w in words:
        token = w.split("=", 1)[-1].strip("()'\";&")
        if token.startswith(REPO_DIRS) and not any(c in token for c in "*{<"):
            assert (ROOT / token).exists(), f"{where}: names {token}, which does not exist"
        m = re.match(r"^build/[^/]+/(?:.+/)?([A-Za-z0-9_]+)$", token)
        if m and "." not in m.group(1) and token.count("/") >= 3:
            assert m.group(1) in TARGETS, f"{where}: runs {token}, but no target {m.group(1)}"
    if "configure_build.sh" in " ".join(words):
        i = next(k for k, w in enumerate(words) if w.endswith("configure_build.sh"))
        for target in words[i + 2:]:
            if target == "--":
                break
            assert target in TARGETS, f"{where}: builds unknown target {target}"


def run_cli(argv, cwd, where):
    argv = [str(cwd / Path(a).name) if a.startswith("/tmp/") else a for a in argv]
    # Files of the repository (commands run from its root in the docs, from a scratch dir here).
    argv = [str(ROOT / a) if a.startswith(REPO_DIRS) and (ROOT / a).exists() else a for a in argv]
    if argv and argv[0] == "simulate":
        if not any(a.startswith("--max-requests") for a in argv):
            argv = argv + ["--max-requests", "8"]
        if "--quiet" not in argv:
            argv = argv + ["--quiet"]
    if argv and argv[0] == "serve":
        # A server the docs start in the background is validated here, not run.
        argv = [a for a in argv if a != "&"]
        if "--check" not in argv:
            argv = argv + ["--check"]
    if len(argv) > 1 and argv[0] == "report" and not argv[1].startswith("-") and \
            not (cwd / argv[1]).exists():
        subprocess.run([CLI, "simulate", "--trace", "synthetic:n=40", "--out", argv[1], "--quiet"],
                       cwd=cwd, check=True, capture_output=True, timeout=120)
    proc = subprocess.run([CLI] + argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"{where}: `pagedkv {' '.join(argv)}` exited "
                                  f"{proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def examples():
    for doc in DOCS:
        earlier_python = []
        for lang, line, text in code_blocks(doc):
            prelude = "\n".join(earlier_python)
            if lang == "python":
                earlier_python.append(text)
            yield pytest.param(doc, lang, line, text, prelude,
                               id=f"{doc.relative_to(ROOT)}:{line}")


@pytest.mark.parametrize("doc,lang,line,text,prelude", list(examples()))
def test_doc_example(doc, lang, line, text, prelude, tmp_path_factory):
    where = f"{doc.relative_to(ROOT)}:{line}"
    cwd = tmp_path_factory.mktemp(doc.stem)
    if lang in ("cpp", "c++", "text", "csv"):
        pytest.skip("C++ fragments and plain text are not run")
    if lang == "json":
        value = json.loads(text)
        if isinstance(value, dict) and "num_q_heads" in value:
            if not CLI:
                pytest.skip("PAGEDKV_CLI not set")
            model = cwd / "model.json"
            model.write_text(text)
            run_cli(["size", "--model", str(model)], cwd, where)
        return
    if lang == "python":
        try:
            import pagedkv  # noqa: F401
        except ImportError:
            pytest.skip("the pagedkv module is not built")
        proc = subprocess.run([sys.executable, "-c", prelude + "\n" + text], cwd=cwd,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{where}: Python example failed\n{proc.stderr[-3000:]}"
        return
    if lang not in SHELL_LANGS:
        pytest.skip(f"{lang} block")
    commands = shell_commands(text)
    if lang == "" and not any(COMMAND_START.match(c) for c in commands):
        pytest.skip("a diagram or listing, not commands")
    ran = False
    for command in commands:
        words = split_words(command)
        if not words:
            continue
        argv = pagedkv_argv(words)
        if argv is not None:
            if not CLI:
                pytest.skip("PAGEDKV_CLI not set")
            run_cli(argv, cwd, where)
            ran = True
        else:
            check_shell_references(words, where)
    if not ran and lang == "":
        return
