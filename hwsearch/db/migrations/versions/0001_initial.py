"""Initial schema: jobs, candidates, measurements, fronts and their points.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as of this revision (later model changes must not
# change what this migration creates).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("family", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column(
            "state",
            _enum("job_state", "queued", "running", "finished", "failed", "cancelled"),
            nullable=False,
        ),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_state"), "jobs", ["state"])

    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("status", _enum("candidate_status", "pending", "done", "failed"), nullable=False),
        sa.Column("feasible", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_candidates_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("job_id", "config_hash", name=op.f("uq_candidates_job_id_config_hash")),
    )
    op.create_index(op.f("ix_candidates_job_id"), "candidates", ["job_id"])

    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column(
            "provenance",
            _enum("provenance", "measured", "predicted", "estimated"),
            nullable=False,
        ),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_measurements_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurements")),
        sa.UniqueConstraint(
            "candidate_id", "metric", name=op.f("uq_measurements_candidate_id_metric")
        ),
    )
    op.create_index(op.f("ix_measurements_candidate_id"), "measurements", ["candidate_id"])
    op.create_index(
        op.f("ix_measurements_config_hash_target"), "measurements", ["config_hash", "target"]
    )

    op.create_table(
        "fronts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("objectives", JSON, nullable=False),
        sa.Column("directions", JSON, nullable=False),
        sa.Column("reference_point", JSON, nullable=False),
        sa.Column("hypervolume", sa.Double(), nullable=False),
        sa.Column("evaluations", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_fronts_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fronts")),
        sa.UniqueConstraint("job_id", "generation", name=op.f("uq_fronts_job_id_generation")),
    )

    op.create_table(
        "front_points",
        sa.Column("front_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("measured", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["front_id"],
            ["fronts.id"],
            name=op.f("fk_front_points_front_id_fronts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_front_points_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("front_id", "candidate_id", name=op.f("pk_front_points")),
    )


def downgrade() -> None:
    op.drop_table("front_points")
    op.drop_table("fronts")
    op.drop_index(op.f("ix_measurements_config_hash_target"), table_name="measurements")
    op.drop_index(op.f("ix_measurements_candidate_id"), table_name="measurements")
    op.drop_table("measurements")
    op.drop_index(op.f("ix_candidates_job_id"), table_name="candidates")
    op.drop_table("candidates")
    op.drop_index(op.f("ix_jobs_state"), table_name="jobs")
    op.drop_table("jobs")
