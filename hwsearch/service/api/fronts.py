"""Fronts served by the API: read once per front with :func:`load_front`, then filtered,
sorted and paged in memory for every request.

A stored front never changes (a running job adds a new one per generation), so a job's
front is cached by the id of its newest front. Whether a newer front exists is asked of the
database at most every ``refresh_s`` seconds per job, so a running job's new generation
shows within that time (plus the time of that one query) and requests in between touch no
database at all.

Whole response bodies are cached too, per (job, front id, normalised query): a dashboard or
script asking for the same page again costs neither filtering, sorting nor JSON encoding.
The front id in the key, and dropping a job's bodies when its newest front changes, keep
them as fresh as the front itself.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from starlette.datastructures import State
from starlette.types import Scope, Send

from hwsearch.db import Store
from hwsearch.errors import FilterError, NotFoundError
from hwsearch.records import CandidateRecord, TokenRecord
from hwsearch.search.filters import Comparison, Filter, Node, Not, parse_filter
from hwsearch.service.api.auth import TokenCache
from hwsearch.service.fronts import FrontView, load_front, point_payload


@dataclass(frozen=True)
class FrontQuery:
    """The query of ``GET /jobs/{id}/front``, as sent (checked by :meth:`FrontCache.body`)."""

    where: str | None = None
    sort: str | None = None
    metrics: str | None = None
    measured_only: bool = False
    offset: int = 0
    limit: int = 50


class FrontQueryError(FilterError):
    """A front query that cannot be answered; ``field`` names the query parameter."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


#: Parsed filters remembered per front (their text to the filter and its canonical form).
_MAX_FILTERS = 256
#: Requests remembered for :meth:`FrontCache.replay`.
_MAX_REPLAYS = 4096


@dataclass(frozen=True)
class EncodedPoint:
    """A front point as JSON, in pieces: a page asking for any subset of metrics joins
    them instead of encoding the point again. ``json(None)`` is
    ``json.dumps(point_payload(candidate, measured, None))``."""

    head: str  # '{"id": ..., "metrics": {'
    metrics: dict[str, str]  # metric -> '"name": {"value": ...}'
    tail: str  # '}, "measured": ...}'
    full: str  # every metric

    @classmethod
    def of(cls, candidate: CandidateRecord, measured: bool) -> EncodedPoint:
        payload = point_payload(candidate, measured, None)
        metrics = payload.pop("metrics")
        payload.pop("measured")
        head = json.dumps(payload, allow_nan=False)[:-1] + ', "metrics": {'
        parts = {
            name: f"{json.dumps(name)}: {json.dumps(value, allow_nan=False)}"
            for name, value in metrics.items()
        }
        tail = f'}}, "measured": {json.dumps(measured)}}}'
        return cls(head, parts, tail, head + ", ".join(parts.values()) + tail)

    def json(self, names: list[str] | None) -> str:
        """The point with the metrics ``names`` (those it has, in that order), or all."""
        if names is None:
            return self.full
        chosen = ", ".join(part for name in names if (part := self.metrics.get(name)))
        return self.head + chosen + self.tail


@dataclass(frozen=True)
class CachedFront:
    view: FrontView
    known: list[str]  # every metric a point has, for filters and sorting
    measured: dict[int, bool]
    encoded: dict[int, EncodedPoint]  # candidate id -> its point as JSON
    # Per known metric, its value for each of view.candidates (NaN where a point lacks it).
    columns: dict[str, npt.NDArray[np.float64]]
    measured_mask: npt.NDArray[np.bool_]  # per candidate of view.candidates
    filters: dict[str, tuple[Filter, str]] = field(default_factory=dict)
    orders: dict[tuple[str, bool], npt.NDArray[np.intp]] = field(default_factory=dict)

    def order(self, metric: str, descending: bool) -> npt.NDArray[np.intp]:
        """Indices of view.candidates sorted by ``metric`` (NaN last, ties in front order)."""
        hit = self.orders.get((metric, descending))
        if hit is None:
            column = self.columns[metric]
            hit = np.argsort(-column if descending else column, kind="stable")
            self.orders[(metric, descending)] = hit
        return hit

    def parse(self, text: str) -> tuple[Filter, str]:
        """``text`` parsed against this front's metrics, and its canonical form."""
        hit = self.filters.get(text)
        if hit is None:
            parsed = parse_filter(text, self.known)
            hit = (parsed, str(parsed))
            if len(self.filters) >= _MAX_FILTERS:
                self.filters.clear()
            self.filters[text] = hit
        return hit


@dataclass(frozen=True)
class FrontSelection:
    front: CachedFront
    candidates: list[CandidateRecord]  # matching, sorted, this page only
    count: int  # matching, all pages


# (job id, front id, canonical filter, sort, metrics, measured only, offset, limit)
_BodyKey = tuple[int, int, str | None, str | None, tuple[str, ...] | None, bool, int, int]


class FrontCache:
    """The newest front of the most recently asked ``max_jobs`` jobs, and the response
    bodies last served from them (at most ``max_body_bytes`` in all, least recently used
    dropped first)."""

    def __init__(
        self,
        store: Store,
        *,
        max_jobs: int = 32,
        refresh_s: float = 0.5,
        max_body_bytes: int = 64 << 20,
    ) -> None:
        self._store = store
        self._max = max_jobs
        self._refresh = refresh_s
        self._max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        # job id -> (front id, when it was last checked to be the newest, the front)
        self._entries: OrderedDict[int, tuple[int, float, CachedFront]] = OrderedDict()
        self._bodies: OrderedDict[_BodyKey, bytes] = OrderedDict()
        self._body_bytes = 0
        # (path, raw query string) of a request answered 200 -> the key of its body
        self._replays: dict[tuple[str, bytes], _BodyKey] = {}
        self._refreshing: dict[int, int] = {}  # job id -> checks of its newest front running

    def peek(self, job_id: int) -> CachedFront | None:
        """The cached front if it is fresh; no database access."""
        with self._lock:
            hit = self._entries.get(job_id)
            if hit is not None and self._fresh(job_id, hit[1]):
                return hit[2]
        return None

    def _fresh(self, job_id: int, checked: float) -> bool:
        """Checked within ``refresh_s``, or being checked now: while one request asks the
        database, the others are answered from the front it is checking, not queued
        behind it."""
        return time.monotonic() - checked < self._refresh or job_id in self._refreshing

    def get(self, job_id: int) -> CachedFront:
        """The job's newest front; ``NotFoundError`` for an unknown job or one without a front."""
        with self._lock:
            self._refreshing[job_id] = self._refreshing.get(job_id, 0) + 1
        try:
            return self._get(job_id)
        finally:
            with self._lock:
                self._refreshing[job_id] -= 1
                if not self._refreshing[job_id]:
                    del self._refreshing[job_id]

    def _get(self, job_id: int) -> CachedFront:
        checked = time.monotonic()
        front_id = self._store.latest_front_id(job_id)
        if front_id is None:
            raise NotFoundError(f"job {job_id} has no front yet")
        with self._lock:
            hit = self._entries.get(job_id)
            if hit is not None and hit[0] == front_id:
                self._entries[job_id] = (front_id, checked, hit[2])
                self._entries.move_to_end(job_id)
                return hit[2]
        view = load_front(self._store, job_id)
        known = sorted({n for c in view.candidates for n in c.metrics} | set(view.front.objectives))
        measured = {p.candidate_id: p.measured for p in view.front.points}
        cached = CachedFront(
            view=view,
            known=known,
            measured=measured,
            columns={
                name: np.array(
                    [
                        c.metrics[name].value if name in c.metrics else math.nan
                        for c in view.candidates
                    ],
                    dtype=np.float64,
                )
                for name in known
            },
            measured_mask=np.array([measured[c.id] for c in view.candidates], dtype=bool),
            encoded={c.id: EncodedPoint.of(c, measured[c.id]) for c in view.candidates},
        )
        with self._lock:
            self._entries[job_id] = (view.front.id, checked, cached)
            self._entries.move_to_end(job_id)
            dropped = {job_id}  # its bodies are of an older front, if any
            while len(self._entries) > self._max:
                dropped.add(self._entries.popitem(last=False)[0])
            for key in [k for k in self._bodies if k[0] in dropped]:
                self._body_bytes -= len(self._bodies.pop(key))
            for request in [r for r, k in self._replays.items() if k[0] in dropped]:
                del self._replays[request]
        return cached

    def body(
        self, cached: CachedFront, query: FrontQuery, request: tuple[str, bytes] | None = None
    ) -> bytes:
        """The JSON body answering ``query`` on ``cached`` (a front this cache returned);
        :class:`FrontQueryError` names the bad parameter. ``request``, the path and raw
        query string that asked, is remembered for :meth:`replay`."""
        subset = metric_subset(cached, query.metrics)
        canonical = None
        keep = None
        if query.where:
            try:
                keep, canonical = cached.parse(query.where)
            except FilterError as exc:
                raise FrontQueryError("where", str(exc)) from None
        front = cached.view.front
        key: _BodyKey = (
            front.job_id,
            front.id,
            canonical,
            query.sort or None,
            None if subset is None else tuple(subset),
            query.measured_only,
            query.offset,
            query.limit,
        )
        with self._lock:
            hit = self._bodies.get(key)
            if hit is not None:
                self._bodies.move_to_end(key)
                self._remember(request, key)
                return hit
        body = render_page(cached, query, keep, subset)
        with self._lock:
            current = self._entries.get(front.job_id)
            if current is None or current[0] != front.id or key in self._bodies:
                return body  # the front was replaced meanwhile: do not keep its bodies
            self._bodies[key] = body
            self._body_bytes += len(body)
            while self._body_bytes > self._max_body_bytes and self._bodies:
                self._body_bytes -= len(self._bodies.popitem(last=False)[1])
            self._remember(request, key)
        return body

    def _remember(self, request: tuple[str, bytes] | None, key: _BodyKey) -> None:
        if request is None:
            return
        if len(self._replays) >= _MAX_REPLAYS:  # bounded: varied queries must not fill memory
            self._replays.clear()
        self._replays[request] = key

    def replay(self, path: str, query_string: bytes) -> bytes | None:
        """The body last served for exactly this path and raw query string, if its front is
        still the job's newest (and fresh, as for :meth:`peek`) and the body still cached;
        ``None`` otherwise. No parsing, no database."""
        with self._lock:
            key = self._replays.get((path, query_string))
            if key is None:
                return None
            entry = self._entries.get(key[0])
            if entry is None or entry[0] != key[1] or not self._fresh(key[0], entry[1]):
                return None
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body


async def send_replay(state: State, scope: Scope, send: Send) -> bool:
    """Answer a byte-identical repeat of a ``GET /jobs/{id}/front`` that was answered 200
    from :meth:`FrontCache.replay`, without FastAPI; whether it did.

    A dashboard polling a front, or many clients asking for its first page, send the same
    request again and again; FastAPI's middleware, parameter validation and dependencies
    cost several times what sending the cached body does. Only a request whose bearer token
    the token cache holds as valid is answered here (parsed as FastAPI's ``HTTPBearer``
    does; any valid token may read fronts). Anything else (no token, one not cached, a front
    not checked within ``refresh_s``, a query not answered before) goes to the route, which
    checks everything. A check added to the route must be added here too.
    """
    if scope["method"] != "GET" or not scope["path"].endswith("/front"):
        return False
    fronts: FrontCache | None = getattr(state, "fronts", None)
    tokens: TokenCache | None = getattr(state, "tokens", None)
    if fronts is None or tokens is None:  # not started
        return False
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if authorization is None:
        return False
    scheme, _, secret = authorization.decode("latin-1").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return False
    if not isinstance(tokens.cached(secret), TokenRecord):
        return False
    body = fronts.replay(scope["path"], scope["query_string"])
    if body is None:
        return False
    headers = [
        (b"content-length", str(len(body)).encode("ascii")),
        (b"content-type", b"application/json"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


def render_page(
    cached: CachedFront, query: FrontQuery, keep: Filter | None, subset: list[str] | None
) -> bytes:
    """One page of the front as the JSON of ``FrontPublic``."""
    try:
        chosen = select_points(
            cached,
            keep=keep,
            sort=query.sort,
            measured_only=query.measured_only,
            offset=query.offset,
            limit=query.limit,
        )
    except FilterError as exc:
        raise FrontQueryError("sort", str(exc)) from None
    front = cached.view.front
    head = {
        "job_id": front.job_id,
        "generation": front.generation,
        "objectives": [
            {"metric": m, "direction": d}
            for m, d in zip(front.objectives, front.directions, strict=True)
        ],
        "reference_point": front.reference_point,
        "hypervolume": front.hypervolume,
        "evaluations": front.evaluations,
        "size": len(front.points),
        "count": chosen.count,
        "offset": query.offset,
        "limit": query.limit,
    }
    # Points are encoded once per front (see FrontCache); a page only joins them.
    points = ",".join(cached.encoded[c.id].json(subset) for c in chosen.candidates)
    body = json.dumps(head, allow_nan=False)[:-1] + ', "points": [' + points + "]}"
    return body.encode("utf-8")


def select_points(
    cached: CachedFront,
    *,
    keep: Filter | None,
    sort: str | None,
    measured_only: bool,
    offset: int,
    limit: int,
) -> FrontSelection:
    """Points that ``keep`` (a parsed filter) accepts, sorted by ``sort`` (a metric, ``-``
    prefix for descending; points without it last, ties in front order), one page of them.

    Filters and sorts whole columns with NumPy: a comparison on a point that lacks the
    metric (NaN) is false, as :class:`~hwsearch.search.filters.Filter` has it.
    """
    mask = (
        cached.measured_mask.copy() if measured_only else np.ones(len(cached.measured_mask), bool)
    )
    if keep is not None:
        mask &= _mask(keep.root, cached.columns)
    if sort:
        descending = sort.startswith("-")
        metric = sort.lstrip("-")
        if metric not in cached.known:
            raise FilterError(
                f"cannot sort by unknown metric {metric!r}; known: {', '.join(cached.known)}"
            )
        order = cached.order(metric, descending)
        chosen = order[mask[order]]
    else:
        chosen = np.flatnonzero(mask)
    candidates = cached.view.candidates
    page = [candidates[i] for i in chosen[offset : offset + limit].tolist()]
    return FrontSelection(cached, page, len(chosen))


_COMPARE: dict[str, Callable[[npt.NDArray[np.float64], float], npt.NDArray[np.bool_]]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _mask(node: Node, columns: dict[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.bool_]:
    """Which points ``node`` accepts."""
    if isinstance(node, Comparison):
        column = columns[node.metric]
        return _COMPARE[node.op](column, node.bound) & ~np.isnan(column)
    if isinstance(node, Not):
        return ~_mask(node.operand, columns)
    masks = [_mask(operand, columns) for operand in node.operands]
    return np.logical_and.reduce(masks) if node.op == "and" else np.logical_or.reduce(masks)


def metric_subset(cached: CachedFront, metrics: str | None) -> list[str] | None:
    """The metric names of a ``metrics=a,b`` query, checked; ``None`` keeps them all."""
    if metrics is None:
        return None
    names = list(dict.fromkeys(m.strip() for m in metrics.split(",") if m.strip()))
    unknown = [m for m in names if m not in cached.known]
    if not names or unknown:
        raise FrontQueryError(
            "metrics",
            f"unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known: {', '.join(cached.known)}",
        )
    return names
