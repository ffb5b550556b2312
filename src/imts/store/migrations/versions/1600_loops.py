"""the closed loop: loops and their steps

Revision ID: 1600_loops
Revises: 1500_optimise
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1600_loops"
down_revision: str | Sequence[str] | None = "1500_optimise"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "loops",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "project_id", sa.String(40), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("request", sa.String(20), nullable=True),
        sa.Column("stop_reason", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("best_run", sa.String(40), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_loops_status", "loops", ["status"])
    op.create_index("ix_loops_project_id", "loops", ["project_id"])
    op.create_table(
        "loop_steps",
        sa.Column("loop_id", sa.String(40), sa.ForeignKey("loops.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("iteration", sa.Integer(), primary_key=True),
        sa.Column("phase", sa.String(20), primary_key=True),
        sa.Column("try_no", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("why", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("loop_steps")
    op.drop_index("ix_loops_project_id", "loops")
    op.drop_index("ix_loops_status", "loops")
    op.drop_table("loops")
