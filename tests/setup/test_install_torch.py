"""``scripts/install-torch.sh``, the Makefile's first install step: the CPU build where there
is no CUDA, from an index that may be unreachable, without hanging (pip runs with
``--dry-run``, so nothing is installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-torch.sh"


def _run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--report",
            str(report),
        ],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    installs = json.loads(report.read_text())["install"] if report.exists() else []
    return done, installs


def test_an_unreachable_cpu_index_falls_back_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    # Port 9 (discard) refuses connections here; a short timeout and no retries keep it quick.
    done, installs = _run(
        tmp_path,
        TORCH_INDEX_URL="http://127.0.0.1:9/whl/cpu",
        PATH=f"{tmp_path}:/usr/bin:/bin",  # no nvidia-smi
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA" in done.stdout and "http://127.0.0.1:9/whl/cpu" in done.stdout
    assert [i["metadata"]["name"] for i in installs] == ["torch"]
    assert installs[0]["metadata"]["version"].startswith("2.13.0")
    assert elapsed < 120, f"took {elapsed:.0f} s"


def test_with_nvidia_smi_torch_comes_as_pip_resolves_it(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    done, installs = _run(tmp_path, PATH=f"{fake}:/usr/bin:/bin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nvidia-smi found" in done.stdout and "CPU build" not in done.stdout
    assert [i["metadata"]["name"] for i in installs] == ["torch"]


def test_the_makefile_installs_torch_through_the_script() -> None:
    done = subprocess.run(
        ["make", "-n", "install", "VENV=/nonexistent-venv", "TORCH_INDEX_URL=http://idx/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "scripts/install-torch.sh" in done.stdout
    assert 'TORCH_INDEX_URL="http://idx/"' in done.stdout
    # make test sets up and tests; installing a browser is its own step (make browser)
    dry = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert "apt-get" not in dry.stdout


def test_a_reachable_index_is_the_only_attempt(tmp_path: Path) -> None:
    """An index that answers is used alone (with pip's configured links), whatever happens
    there: no second install from pip's configured indexes, which could be PyPI's CUDA build."""
    import http.server
    import threading

    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / "index.html").write_text("<html><body></body></html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done, _ = _run(tmp_path, TORCH_INDEX_URL=url, PATH=f"{tmp_path}:/usr/bin:/bin")
    finally:
        server.shutdown()
        server.server_close()
    assert f"CPU build, from {url}" in done.stdout, done.stdout + done.stderr
    assert "cannot be reached" not in done.stdout
    assert done.stdout.count("install-torch:") == 1  # one attempt, no fall back
