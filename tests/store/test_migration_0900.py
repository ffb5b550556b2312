"""Migration 0900 adds identity and the audit log to an existing workspace, on SQLite and PostgreSQL:
the tables match the models, the chain starts at the genesis head, and the log refuses UPDATE/DELETE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from tests.store.test_migration_0800 import _upgrade, old_engine  # noqa: F401  (the fixture)

from imts.store.db import migrate
from imts.store.models import Base


def test_identity_tables_join_an_existing_workspace(old_engine: Engine) -> None:  # noqa: F811
    _upgrade(old_engine, "0800_tenants")
    now = datetime.now(UTC)
    with old_engine.begin() as c:
        c.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('tnt_x', 'acme', :c)"), {"c": now})
    migrate(old_engine)
    with old_engine.begin() as c:
        assert c.execute(text("SELECT seq, hash FROM audit_head")).one() == (0, "0" * 64)
        assert c.scalar(text("SELECT name FROM tenants WHERE id = 'tnt_x'")) == "acme"
        c.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, object_type, object_id, prev_hash, hash)"
                " VALUES (1, 'now', 'a', 'x.y', 't', 'i', 'p', 'h')"
            )
        )
    for sql in ("UPDATE audit_log SET actor = 'b'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), old_engine.begin() as c:
            c.execute(text(sql))
    with old_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    touched = ("users", "memberships", "api_keys", "login_sessions", "audit_log", "audit_head")
    assert [d for d in diff if any(t in str(d) for t in touched)] == []
