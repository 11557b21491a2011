"""The ``interrupted`` job state.

A job stopped by Ctrl-C, SIGTERM or a server shutdown is ``interrupted`` (it was marked
``failed``); the CHECK constraint of ``jobs.state`` gains the value. Downgrading turns
interrupted jobs back into failed ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("queued", "running", "finished", "failed", "cancelled")


def _state(*values: str) -> sa.Enum:
    return sa.Enum(*values, name="job_state", native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column(
            "state",
            existing_type=_state(*_STATES),
            type_=_state(*_STATES, "interrupted"),
            existing_nullable=False,
        )


def downgrade() -> None:
    op.execute("UPDATE jobs SET state = 'failed' WHERE state = 'interrupted'")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column(
            "state",
            existing_type=_state(*_STATES, "interrupted"),
            type_=_state(*_STATES),
            existing_nullable=False,
        )
