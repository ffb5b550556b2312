"""registry and tracking: model aliases with history, protected aliases, the alias-change clock,
version tags and archiving, and the environment a run was made in

Revision ID: 0950_aliases
Revises: 0900_identity
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0950_aliases"
down_revision: str | Sequence[str] | None = "0920_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("set_at"),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("set_seq", sa.Integer(), nullable=False),
        _ts("unset_at", nullable=True),
        sa.Column("unset_by", sa.String(200), nullable=True),
        sa.Column("unset_seq", sa.Integer(), nullable=True),
    )
    op.create_index("ix_model_aliases_lookup", "model_aliases", ["project_id", "model", "alias", "unset_at"])
    op.create_table(
        "alias_protections",
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("min_role", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "alias_clock",
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("model_versions") as b:
        b.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        b.add_column(_ts("archived_at", nullable=True))
    with op.batch_alter_table("runs") as b:
        b.add_column(sa.Column("environment", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as b:
        b.drop_column("environment")
    with op.batch_alter_table("model_versions") as b:
        b.drop_column("archived_at")
        b.drop_column("tags")
    op.drop_table("alias_clock")
    op.drop_table("alias_protections")
    op.drop_index("ix_model_aliases_lookup", table_name="model_aliases")
    op.drop_table("model_aliases")
