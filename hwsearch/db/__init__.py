"""Storage: jobs, candidates, measurements and Pareto fronts in SQLite or PostgreSQL.

``Store.open()`` is the entry point; it migrates the schema (Alembic) and returns plain
records from :mod:`hwsearch.records`. The URL comes from the argument, ``HWSEARCH_DB_URL``
or defaults to ``sqlite:///hwsearch.db``.
"""

from hwsearch.db.engine import current_revision, database_url, make_engine, upgrade
from hwsearch.db.store import JOB_TRANSITIONS, Store

__all__ = [
    "JOB_TRANSITIONS",
    "Store",
    "current_revision",
    "database_url",
    "make_engine",
    "upgrade",
]
