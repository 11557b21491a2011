"""Driver events: the order of a job's asks and tells.

One row per step of a job's driver, numbered by ``seq``: the driving (``async`` or
``generational``) first, then each ``ask`` of the optimizer (``value``: how many
suggestions) and each ``tell`` (``value``: the ordinal of the suggestion whose result was
told). Resuming an asynchronously driven job replays them in this order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "driver_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_driver_events_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_driver_events")),
        sa.UniqueConstraint("job_id", "seq", name=op.f("uq_driver_events_job_id_seq")),
    )


def downgrade() -> None:
    op.drop_table("driver_events")
