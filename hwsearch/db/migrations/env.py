"""Alembic environment for the hwsearch schema.

Called two ways: programmatically by :func:`hwsearch.db.engine.upgrade_engine`, which hands
over an open connection in ``config.attributes["connection"]``; or by the ``alembic`` command
line with ``-c hwsearch/db/alembic.ini``, where the URL comes from ``config.attributes["url"]``,
``HWSEARCH_DB_URL`` or the default SQLite file.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext

from hwsearch.db.engine import database_url, make_engine, normalize_url
from hwsearch.db.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render the project's column types as plain SQLAlchemy types in new revisions, so a
    revision never imports the (changing) models module."""
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, sa.JSON):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(), "postgresql")'
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables where needed.
        render_as_batch=connection.dialect.name == "sqlite",
        # The engine emits BEGIN itself on SQLite (see engine.py), so DDL is transactional
        # there too: a failing migration leaves the schema as it was.
        transactional_ddl=True,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=normalize_url(config.attributes.get("url") or database_url(None)),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    # Command-line use: configure logging from the ini (never when embedded, where it
    # would replace the application's logging setup).
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = make_engine(config.attributes.get("url") or database_url(None))
    try:
        with engine.connect() as conn:
            _configure(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
