"""Server settings: database, limits, where table files may be read, plug-ins, the runner."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hwsearch.search.limits import SpecLimits
from hwsearch.service.runner import RunnerSettings

#: Where ``hwsearch serve --api-workers N`` hands its settings to the worker processes.
SETTINGS_ENV = "HWSEARCH_SERVE_SETTINGS"

#: Largest page of jobs or front points one request may ask for.
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class ServiceSettings:
    """Everything ``hwsearch serve`` configures.

    ``table_roots``: folders a submitted spec may read table files from (relative paths in
    a spec are taken from the first); a spec naming a file elsewhere is refused before the
    file is opened. ``plugins``: modules imported at start-up, which may register extra
    families or optimizers; specs still name only registered names, never Python.
    ``run_jobs`` off serves the API without running anything (another server runs them).
    ``limits``: caps on what a spec or a query may ask for (:mod:`hwsearch.search.limits`);
    they become this process's limits when the app is created.
    """

    db_url: str | None = None
    max_body_bytes: int = 1 << 20
    table_roots: tuple[Path, ...] = ()
    plugins: tuple[str, ...] = ()
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    run_jobs: bool = True
    #: How long an answer about a token is remembered: a revoked token stops working
    #: within this many seconds.
    token_cache_s: float = 5.0
    limits: SpecLimits = field(default_factory=SpecLimits)

    def __post_init__(self) -> None:
        if isinstance(self.max_body_bytes, bool) or self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes!r}")
        if self.token_cache_s < 0:
            raise ValueError(f"token_cache_s must not be negative, got {self.token_cache_s!r}")
        object.__setattr__(
            self, "table_roots", tuple(Path(p).expanduser().resolve() for p in self.table_roots)
        )

    def to_environment(self) -> dict[str, str]:
        """These settings, less the runner's, for :meth:`from_environment` in a worker
        process of ``hwsearch serve --api-workers`` (workers never run jobs)."""
        data = {
            "db_url": self.db_url,
            "max_body_bytes": self.max_body_bytes,
            "table_roots": [str(p) for p in self.table_roots],
            "plugins": list(self.plugins),
            "token_cache_s": self.token_cache_s,
            "limits": self.limits.to_dict(),
        }
        return {SETTINGS_ENV: json.dumps(data)}

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        """The settings :meth:`to_environment` set, with ``run_jobs`` off."""
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise ValueError(f"{SETTINGS_ENV} is not set; start workers with hwsearch serve")
        data = json.loads(text)
        return cls(
            db_url=data["db_url"],
            max_body_bytes=data["max_body_bytes"],
            table_roots=tuple(Path(p) for p in data["table_roots"]),
            plugins=tuple(data["plugins"]),
            run_jobs=False,
            token_cache_s=data["token_cache_s"],
            limits=SpecLimits(**data.get("limits", {})),
        )
