"""The machine's load during a measurement: who else used the cores, and whether that, or
the dispersion of the samples, makes the figure not clean (``noisy``).

A :class:`LoadWindow` reads, at its start and end, the per-CPU counters of ``/proc/stat``
for the CPUs this process may run on (``sched_getaffinity``), this process's own CPU time
(all threads, ``getrusage``) and ``/proc/loadavg``. Over the window:

* ``others_cores``: CPU time busy on those CPUs (user, nice, system, irq, softirq) less this
  process's own, per second of wall time: how many of the cores other processes took;
* ``steal_cores``: CPU time the hypervisor gave to other guests (``steal``) per second;
* ``others_share`` / ``steal_share``: the same as shares of the cores' time (0..1);
* ``loadavg_1m`` (and 5 and 15 minutes) at the end: runnable tasks, averaged by the kernel.

A measurement that runs ``threads`` threads needs that many cores to itself. It is flagged
``noisy`` when others and steal took more than ``cores - threads + NOISY_CORE_MARGIN`` cores
(its threads had to share a core with someone else for a noticeable part of the window),
when the 1-minute load average exceeds ``NOISY_LOADAVG_FACTOR × cores``, or when the
samples did not reach their dispersion target (``cv > target_cv``). The reasons are stored.

Where ``/proc`` is missing (not Linux) the counters are ``None`` and only the dispersion
decides.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

#: Core-time other processes may take beyond the cores the measurement leaves free.
NOISY_CORE_MARGIN = 0.25
#: A 1-minute load average above this many times the cores flags the measurement.
NOISY_LOADAVG_FACTOR = 1.5

PROC_STAT = Path("/proc/stat")
PROC_LOADAVG = Path("/proc/loadavg")
# /proc/stat columns: user nice system idle iowait irq softirq steal guest guest_nice
_BUSY_COLUMNS = (0, 1, 2, 5, 6)  # guest time is already counted in user and nice
_STEAL_COLUMN = 7


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (every CPU where affinity is unknown)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on every OS
        return list(range(os.cpu_count() or 1))


def _ticks_per_second() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


@dataclass(frozen=True)
class _Counters:
    wall: float
    own_cpu_s: float
    busy_s: float | None  # on the usable CPUs, every process
    steal_s: float | None


def _read_counters(cpus: list[int], path: Path = PROC_STAT) -> _Counters:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    wall = time.monotonic()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return _Counters(wall, own, None, None)
    wanted = {f"cpu{i}" for i in cpus}
    busy = steal = 0
    seen = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name not in wanted:
            continue
        values = [int(v) for v in rest.split()]
        busy += sum(values[i] for i in _BUSY_COLUMNS if i < len(values))
        steal += values[_STEAL_COLUMN] if len(values) > _STEAL_COLUMN else 0
        seen += 1
    if not seen:
        return _Counters(wall, own, None, None)
    tick = _ticks_per_second()
    return _Counters(wall, own, busy / tick, steal / tick)


def read_loadavg(path: Path = PROC_LOADAVG) -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages, or ``None`` where the file is missing."""
    try:
        fields = path.read_text().split()
        return float(fields[0]), float(fields[1]), float(fields[2])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class LoadReading:
    """What the machine did besides this process during one window (module docstring)."""

    window_s: float
    cores: int
    own_cores: float
    others_cores: float | None
    steal_cores: float | None
    loadavg: tuple[float, float, float] | None

    @property
    def others_share(self) -> float | None:
        return None if self.others_cores is None else self.others_cores / self.cores

    @property
    def steal_share(self) -> float | None:
        return None if self.steal_cores is None else self.steal_cores / self.cores

    def reasons(self, threads: int) -> list[str]:
        """Why a measurement with ``threads`` threads in this window is not clean (empty:
        it is)."""
        out: list[str] = []
        taken = (self.others_cores or 0.0) + (self.steal_cores or 0.0)
        allowed = max(0.0, self.cores - threads) + NOISY_CORE_MARGIN
        if self.others_cores is not None and taken > allowed:
            out.append(
                f"other processes (and steal) used {taken:.2f} of {self.cores} cores while "
                f"{threads} thread(s) measured"
            )
        if self.loadavg is not None and self.loadavg[0] > NOISY_LOADAVG_FACTOR * self.cores:
            out.append(f"1-minute load average {self.loadavg[0]:.2f} on {self.cores} cores")
        return out

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "window_s": round(self.window_s, 4),
            "cores": self.cores,
            "own_cores": rounded(self.own_cores),
            "others_cores": rounded(self.others_cores),
            "others_share": rounded(self.others_share),
            "steal_cores": rounded(self.steal_cores),
            "steal_share": rounded(self.steal_share),
            "loadavg_1m": None if self.loadavg is None else self.loadavg[0],
            "loadavg_5m": None if self.loadavg is None else self.loadavg[1],
            "loadavg_15m": None if self.loadavg is None else self.loadavg[2],
        }


class LoadWindow:
    """``with LoadWindow() as w: ...``; then ``w.reading`` is the :class:`LoadReading`."""

    def __init__(self) -> None:
        self.cpus = usable_cpus()
        self.reading: LoadReading | None = None
        self._start: _Counters | None = None

    @property
    def started(self) -> float | None:
        """When the window opened (``time.monotonic``), or ``None`` before."""
        return None if self._start is None else self._start.wall

    def __enter__(self) -> LoadWindow:
        self._start = _read_counters(self.cpus)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        start = self._start
        if start is None:
            return
        end = _read_counters(self.cpus)
        wall = max(end.wall - start.wall, 1e-9)
        own = max(0.0, end.own_cpu_s - start.own_cpu_s)
        others = steal = None
        if start.busy_s is not None and end.busy_s is not None:
            # Counters tick at 1/CLK_TCK and our own time is sampled differently: clamp.
            others = max(0.0, (end.busy_s - start.busy_s) - own) / wall
            others = min(others, float(len(self.cpus)))
        if start.steal_s is not None and end.steal_s is not None:
            steal = max(0.0, end.steal_s - start.steal_s) / wall
        self.reading = LoadReading(
            window_s=wall,
            cores=len(self.cpus),
            own_cores=own / wall,
            others_cores=others,
            steal_cores=steal,
            loadavg=read_loadavg(),
        )


def noisy_reasons(
    reading: LoadReading | None, *, threads: int, cv: float, target_cv: float
) -> list[str]:
    """Why a measurement is not clean: the load of its window, or its dispersion."""
    out = [] if reading is None else reading.reasons(threads)
    if cv > target_cv:
        out.append(f"dispersion cv {cv:.3f} above the target {target_cv:g}")
    return out
