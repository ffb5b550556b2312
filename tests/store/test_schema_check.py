"""The per-process schema check: a fast query when the database is at head, Alembic only otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from imts.store import db


def test_head_revisions_match_alembic() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    assert db.head_revisions() == set(ScriptDirectory.from_config(cfg).get_heads())


def test_current_schema_skips_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert not db.schema_is_current(engine)  # a new database: no version table
    db.migrate(engine)
    assert db.schema_is_current(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert not db.schema_is_current(engine)  # behind: the next process upgrades it
    engine.dispose()

    def boom(engine: object) -> None:
        raise AssertionError("migrate must not run on a current schema")

    url = f"sqlite:///{tmp_path / 'b.db'}"
    db.migrate(db.make_engine(url))
    monkeypatch.setattr(db, "migrate", boom)
    db.session_factory(url)  # first use in this process: the check passes without Alembic
