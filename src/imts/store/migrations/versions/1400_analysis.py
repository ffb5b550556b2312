"""dataset analyses: intent, fit verdict and health score of a dataset version (issue 14)

Revision ID: 1400_analysis
Revises: 0980_jobs_list_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1400_analysis"
down_revision: str | Sequence[str] | None = "0980_jobs_list_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_analyses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("version_id", sa.String(40), sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("intent", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(10), nullable=False),
        sa.Column("task", sa.String(40), nullable=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("fit_score", sa.Float(), nullable=False),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("report_key", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dataset_analyses_project_id", "dataset_analyses", ["project_id"])
    op.create_index("ix_dataset_analyses_version_id", "dataset_analyses", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_dataset_analyses_version_id", table_name="dataset_analyses")
    op.drop_index("ix_dataset_analyses_project_id", table_name="dataset_analyses")
    op.drop_table("dataset_analyses")
