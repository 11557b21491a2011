"""How long ``hwsearch run`` takes to report a one-character spec typo.

    python bench/spec_typo.py [--repeats 5] [--tree PATH ...]

Writes ``examples/digits_cnn.yaml`` with ``metric: accuracy`` misspelt into a temporary
folder and runs ``hwsearch run bad.yaml`` there in a fresh interpreter, ``--repeats`` times
per source tree (``--tree``, default this checkout; each put first on ``PYTHONPATH``), the
trees taking turns so that they share the machine's load. Prints one JSON line per tree:
the median wall time and the median CPU time (user + system) of the child, in seconds,
and the exit code (2: the spec error). CPU time is the steadier figure on a shared
machine; wall time includes waiting for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "from hwsearch.service.cli import app; app()"


def _once(tree: Path, folder: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, "run", "bad.yaml", "--db", "sqlite:///bench.db"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tree", type=Path, action="append")
    args = parser.parse_args()
    trees: list[Path] = [t.resolve() for t in (args.tree or [ROOT])]
    text = (ROOT / "examples" / "digits_cnn.yaml").read_text()
    bad = text.replace("metric: accuracy,", "metric: acuracy,", 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bad.yaml").write_text(bad)
        runs: dict[Path, list[tuple[float, float, int]]] = {t: [] for t in trees}
        for _ in range(args.repeats):
            for tree in trees:
                runs[tree].append(_once(tree, folder))
    for tree, got in runs.items():
        print(
            json.dumps(
                {
                    "tree": str(tree),
                    "repeats": len(got),
                    "wall_s_median": round(statistics.median(w for w, _, _ in got), 2),
                    "cpu_s_median": round(statistics.median(c for _, c, _ in got), 2),
                    "exit_codes": sorted({rc for _, _, rc in got}),
                    "loadavg_1m_end": round(os.getloadavg()[0], 2),
                }
            )
        )


if __name__ == "__main__":
    main()
