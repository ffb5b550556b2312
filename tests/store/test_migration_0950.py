"""Migration 0950_aliases joins an existing workspace on SQLite and PostgreSQL: model versions gain
empty tags and no archive date, runs an empty environment, and the new tables match the models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from tests.store.test_migration_0800 import _upgrade, old_engine  # noqa: F401  (the fixture)

from imts.store.db import migrate
from imts.store.models import Base


def test_aliases_and_run_records_join_an_existing_workspace(old_engine: Engine) -> None:  # noqa: F811
    _upgrade(old_engine, "0900_identity")
    now = datetime.now(UTC)
    with old_engine.begin() as c:
        c.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('tnt_x', 'acme', :c)"), {"c": now})
        c.execute(text("INSERT INTO projects (id, tenant_id, name, created_at) VALUES "
                       "('prj_x', 'tnt_x', 'p', :c)"), {"c": now})  # fmt: skip
        c.execute(text("INSERT INTO runs (id, project_id, kind, status, spec, summary, created_at) VALUES "
                       "('run_x', 'prj_x', 'train', 'succeeded', '{}', '{}', :c)"), {"c": now})  # fmt: skip
    migrate(old_engine)
    with old_engine.begin() as c:
        assert c.scalar(text("SELECT environment FROM runs WHERE id = 'run_x'")) in ({}, "{}")
    with old_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    touched = ("model_aliases", "alias_protections", "alias_clock", "'tags'", "archived_at", "environment")
    assert [d for d in diff if any(t in str(d) for t in touched)] == []
