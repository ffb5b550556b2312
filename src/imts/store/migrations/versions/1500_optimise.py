"""data optimisation: per-project secrets (PII surrogates) and the review queue of generated rows

Revision ID: 1500_optimise
Revises: 1400_analysis
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1500_optimise"
down_revision: str | Sequence[str] | None = "1400_analysis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_secrets",
        sa.Column(
            "project_id", sa.String(40), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("purpose", sa.String(40), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "project_id", sa.String(40), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("fix_id", sa.String(40), nullable=False, index=True),
        sa.Column("row_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("original", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_items_queue", "review_items", ["project_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_review_items_queue", "review_items")
    op.drop_table("review_items")
    op.drop_table("project_secrets")
