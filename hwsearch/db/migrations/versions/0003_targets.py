"""Target profiles: the devices jobs run on, with their power and carbon factors; and the
footprint of each job's own search.

``targets`` holds one profile per target name (``cpu``, ``cuda:0``, a table target's
device): kind, TDP and the cores it covers, embodied carbon, service lifetime and busy
share, region, PUE, an optional grid intensity, the energy meter, and where each factor
comes from. ``jobs.footprint`` is the energy and carbon of running the search itself.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as of this revision.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "cpu",
                "cuda",
                "table",
                name="target_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("tdp_w", sa.Double(), nullable=False),
        sa.Column("cores", sa.Integer(), nullable=False),
        sa.Column("embodied_kgco2e", sa.Double(), nullable=False),
        sa.Column("lifetime_years", sa.Double(), nullable=False),
        sa.Column("busy_share", sa.Double(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("pue", sa.Double(), nullable=False),
        sa.Column("grid_gco2e_per_kwh", sa.Double(), nullable=True),
        sa.Column("meter", sa.String(length=16), nullable=False),
        sa.Column("sources", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint("name", name=op.f("uq_targets_name")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("footprint", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("footprint")
    op.drop_table("targets")
