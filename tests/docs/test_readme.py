"""Every shell block of README.md runs, in order, as a new user would type them: one bash
session in a fresh folder laid out like a clone (``examples/`` copied, ``../shared`` beside
it), against a fresh database there.

What the test changes, and only this:

- The examples' budgets are cut (fewer evaluations and epochs, shorter measurements), so the
  blocks run in minutes; commands and file names are the README's own.
- ``. .venv/bin/activate`` puts this interpreter's ``bin`` first on ``PATH`` and this
  checkout on ``PYTHONPATH``.
- ``hwsearch serve`` listens on a free port instead of 8000 (and ``127.0.0.1:8000`` becomes
  that port), and a server started with ``&`` is waited for until it answers.
- A block preceded by ``<!-- readme-test: skip REASON -->`` is not run; the reason is
  printed. Only ``bash`` blocks run (``yaml``, ``python`` and output samples do not).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s+(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")

#: per example: the changes that make it small (the rest of each spec is as written)
SMALL: dict[str, dict[str, Any]] = {
    "digits_cnn.yaml": {
        "budget": {"evaluations": 4, "wall_time_s": 120},
        "optimizer": {"name": "optuna-nsga2", "population_size": 4},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
        "measurement": {"warmup": 2, "min_repeats": 5, "max_repeats": 20},
    },
    "digits_cnn_carbon.yaml": {
        "budget": {"evaluations": 2, "wall_time_s": 120},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
        "measurement": {"warmup": 2, "min_repeats": 5, "max_repeats": 20},
    },
    "tiny_lm.yaml": {
        "budget": {"evaluations": 2, "wall_time_s": 120},
        "evaluation": {"steps": 5, "finetune_steps": 0},
    },
    "nb201_pixel3.yaml": {"budget": {"evaluations": 20}},
    "nb201_pixel3_prior.yaml": {"budget": {"evaluations": 10}},
}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    text: str
    skip: str | None


def readme_blocks() -> list[Block]:
    """The ``bash`` blocks of the README, each with its skip reason if it has one."""
    lines = README.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start, lang = i, match["lang"]
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.search(before)
        if lang in ("bash", "sh", "shell"):
            text = "\n".join(lines[start + 1 : end])
            blocks.append(Block(start + 1, text, skip["reason"] if skip else None))
        i = end + 1
    return blocks


def _merge(spec: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            _merge(spec[key], value)
        else:
            spec[key] = value


def _workspace(tmp_path: Path) -> Path:
    """A folder laid out like a clone: ``repo/examples`` (budgets cut), ``shared`` beside."""
    repo = tmp_path / "repo"
    shutil.copytree(
        ROOT / "examples", repo / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name, change in SMALL.items():
        path = repo / "examples" / name
        spec = yaml.safe_load(path.read_text())
        _merge(spec, change)
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    activate = repo / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(
        f'export PATH="{Path(sys.executable).parent}:$PATH"\nexport PYTHONPATH="{ROOT}"\n'
    )
    return repo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script(blocks: list[Block], port: int) -> str:
    wait = (
        f"for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; "
        "sleep 0.1; done"
    )
    out = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in blocks:
        if block.skip:
            out.append(f"echo '### README line {block.line}: skipped ({block.skip})'")
            continue
        out.append(f"echo '### README line {block.line}'; echo \"(at $SECONDS s)\"")
        for line in block.text.splitlines():
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            line = line.replace("hwsearch serve", f"hwsearch serve --port {port}")
            out.append(line)
            if re.search(r"hwsearch serve.*&\s*(#.*)?$", line):
                out.append(wait)
    return "\n".join(out) + "\n"


def test_the_readme_parses_into_blocks() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 6
    run = [b for b in blocks if b.skip is None]
    assert any("hwsearch run examples/digits_cnn.yaml" in b.text for b in run)
    assert any("hwsearch serve" in b.text for b in run)
    assert all(b.skip for b in blocks if "make demo" in b.text or "--executor ray" in b.text)


@pytest.mark.slow
def test_every_readme_block_runs_in_order(tmp_path: Path) -> None:
    if not (SHARED / "data" / "nb201").is_dir():
        reason = f"the shared data is not beside the repository ({SHARED / 'data'})"
        if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
            pytest.fail(reason)
        pytest.skip(reason)
    repo = _workspace(tmp_path)
    blocks = readme_blocks()
    script = _script(blocks, _free_port())
    (tmp_path / "readme.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWSEARCH_")}
    env |= {"OMP_NUM_THREADS": "1", "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        ["bash", str(tmp_path / "readme.sh")],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        else:  # a server left running by the script
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    ran = re.findall(r"^### README line (\d+)$", output, re.M)
    assert process.returncode == 0, f"a README block failed:\n{output[-6000:]}"
    assert len(ran) == sum(b.skip is None for b in blocks), output[-3000:]
    # what the blocks say they make, they made
    assert (repo / "hwsearch.db").exists()
    assert (repo / "exported" / "config.json").exists()
    assert (repo / "runs" / "job-1" / "front.csv").exists()
    assert "nothing to resume" in output
