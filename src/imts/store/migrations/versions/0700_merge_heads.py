"""Merge the dataset, jobs and evaluation branches of the schema into one head.

Revision ID: 0700_merge_heads
Revises: 0300_datasets, 0500_jobs, 0600_evals
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0700_merge_heads"
down_revision: str | Sequence[str] | None = ("0300_datasets", "0500_jobs", "0600_evals")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
