"""Migration 1400: the ``dataset_analyses`` table matches its model after ``migrate`` (SQLite)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from imts.store.db import migrate
from imts.store.models import Base


def test_dataset_analyses_table_matches_the_model(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'imts.db'}")
    migrate(engine)
    assert "dataset_analyses" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "dataset_analyses" in str(d)] == []
