"""Weights of the user's candidates in the artifact store (:mod:`hwsearch.artifacts`).

A worker puts each evaluated candidate's compressed weights
(:func:`hwsearch.models.custom.weights.dump_weights`) into the store at the evaluation's
``artifacts`` folder (by default ``<db file>.artifacts/`` beside a SQLite database; set
``evaluation.artifacts`` for another folder or for PostgreSQL) and references the digest
from the candidate's declared metrics (``details["weights"]``). Export reloads them into
``build(config)`` instead of compressing and fine-tuning again. When a run ends, weights of
candidates off the front are deleted unless ``keep_weights: all`` (or another stored
candidate references the same digest).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hwsearch.artifacts import ArtifactStore

log = logging.getLogger(__name__)


def weights_digest(metrics: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(artifacts folder, digest)`` referenced by a candidate's stored metrics."""
    for metric in metrics.values():
        details = getattr(metric, "details", None) or {}
        if details.get("weights") and details.get("artifacts"):
            return str(details["artifacts"]), str(details["weights"])
    return None


def drop_off_front(store: Any, job_id: int, root: str) -> int:
    """Delete the weights of job ``job_id``'s candidates that are not on its last front and
    that no other stored candidate's front keeps; returns how many files went."""
    front = store.latest_front(job_id)
    on_front = {p.candidate_id for p in front.points} if front is not None else set()
    mine: dict[str, bool] = {}
    for candidate in store.list_candidates(job_id):
        ref = weights_digest(candidate.metrics)
        if ref is not None and ref[0] == root:
            mine[ref[1]] = mine.get(ref[1], False) or candidate.id in on_front
    drop = {d for d, keep in mine.items() if not keep}
    if drop:  # a digest another job references stays
        for job in store.list_jobs(limit=100_000):
            if job.id == job_id:
                continue
            for candidate in store.list_candidates(job.id):
                ref = weights_digest(candidate.metrics)
                if ref is not None:
                    drop.discard(ref[1])
    artifacts = ArtifactStore(root)
    return sum(artifacts.delete(d) for d in drop)
