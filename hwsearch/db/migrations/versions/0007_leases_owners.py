"""Job leases, job owners and token scopes.

A running job is driven by whoever holds its lease: ``lease_owner`` (a runner id),
``lease_host`` and ``lease_pid`` name the driver, ``heartbeat_at`` is its last renewal and
``lease_expires_at`` the moment another driver may take the job over. ``owner_token_id``
is the API token that submitted the job (``NULL`` for jobs made by the CLI). Token scopes
become ``read``, ``submit`` and ``admin``; a former ``write`` token is a ``submit`` one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _scope(*values: str) -> sa.Enum:
    return sa.Enum(
        *values, name="token_scope", native_enum=False, create_constraint=True, length=16
    )


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("owner_token_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_owner_token_id_api_tokens"),
            "api_tokens",
            ["owner_token_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column(
            "scope",
            existing_type=_scope("read", "write"),
            type_=_scope("read", "write", "submit", "admin"),
            existing_nullable=False,
        )
    op.execute("UPDATE api_tokens SET scope = 'submit' WHERE scope = 'write'")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column(
            "scope",
            existing_type=_scope("read", "write", "submit", "admin"),
            type_=_scope("read", "submit", "admin"),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column(
            "scope",
            existing_type=_scope("read", "submit", "admin"),
            type_=_scope("read", "write", "submit", "admin"),
            existing_nullable=False,
        )
    op.execute("UPDATE api_tokens SET scope = 'write' WHERE scope IN ('submit', 'admin')")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column(
            "scope",
            existing_type=_scope("read", "write", "submit", "admin"),
            type_=_scope("read", "write"),
            existing_nullable=False,
        )
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("fk_jobs_owner_token_id_api_tokens"), type_="foreignkey")
        for column in (
            "owner_token_id",
            "lease_expires_at",
            "heartbeat_at",
            "lease_pid",
            "lease_host",
            "lease_owner",
        ):
            batch.drop_column(column)
