"""API tokens: random secrets shown once, stored as their SHA-256 digest.

A token is ``hws_`` followed by 43 URL-safe characters (256 random bits), so a plain,
unsalted SHA-256 is enough to store it: there is nothing to guess from the digest.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

from hwsearch.db import Store
from hwsearch.records import TokenRecord, TokenScope

PREFIX = "hws_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    store: Store, name: str, scope: TokenScope = TokenScope.SUBMIT
) -> tuple[str, TokenRecord]:
    """Store a new token; returns its secret (never stored) and its record."""
    secret = new_secret()
    return secret, store.add_token(name=name, token_hash=digest(secret), scope=scope)


class TokenCache:
    """Looks tokens up by secret, remembering answers for ``ttl_s`` seconds so that a busy
    client does not cost a database query per request (a revoked token may keep working for
    up to ``ttl_s``)."""

    def __init__(self, store: Store, ttl_s: float) -> None:
        self._store = store
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, TokenRecord | None]] = {}

    #: What :meth:`cached` answers for a secret it has no fresh answer about.
    UNKNOWN: object = object()

    def cached(self, secret: str) -> TokenRecord | object | None:
        """The remembered answer for ``secret`` (a record or ``None``), or :attr:`UNKNOWN`."""
        with self._lock:
            hit = self._seen.get(digest(secret))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return self.UNKNOWN

    def lookup(self, secret: str) -> TokenRecord | None:
        """The valid (not revoked) token with this secret, else ``None``."""
        hit = self.cached(secret)
        if hit is not self.UNKNOWN:
            return hit  # type: ignore[return-value]
        key = digest(secret)
        now = time.monotonic()
        found = self._store.find_token(key)
        record = None if found is None or found.revoked else found
        with self._lock:
            if len(self._seen) > 10_000:  # bounded: unknown secrets must not fill memory
                self._seen.clear()
            self._seen[key] = (now + self._ttl, record)
        return record
