"""serving: deployments (a model's alias, or a base model, served under a name)

Revision ID: 0960_deployments
Revises: 0950_aliases
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0960_deployments"
down_revision: str | Sequence[str] | None = "0950_aliases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(100), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_deployments_project_name"),
    )
    op.create_index("ix_deployments_project_id", "deployments", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_deployments_project_id", table_name="deployments")
    op.drop_table("deployments")
