"""evaluation: generation cache and per-item scores

Revision ID: 0600_evals
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0600_evals"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "generation_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("model_key", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("new_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("generation_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generation_cache_model_key"), ["model_key"], unique=False)
    op.create_table(
        "eval_item_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "item_id", "name"),
    )
    with op.batch_alter_table("eval_item_scores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_item_scores_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eval_item_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_item_scores_run_id"))
    op.drop_table("eval_item_scores")
    with op.batch_alter_table("generation_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_cache_model_key"))
    op.drop_table("generation_cache")
