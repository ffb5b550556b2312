"""a project's jobs, newest first, read from an index (the console's overview of 10,000 jobs)

Revision ID: 0980_jobs_list_index
Revises: 0970_user_lang
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0980_jobs_list_index"
down_revision: str | Sequence[str] | None = "0970_user_lang"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_project_submitted", "jobs", ["project_id", "submitted_ts"])


def downgrade() -> None:
    op.drop_index("ix_jobs_project_submitted", table_name="jobs")
