"""Migration 0800 upgrades an existing workspace in place: tenants from the old ``projects.tenant``,
project names unique per tenant, model versions unique per project — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from imts.store.db import MIGRATIONS_DIR, make_engine, migrate
from imts.store.models import Base

PG_ADMIN_URL = os.environ.get(
    "IMTS_TEST_POSTGRES_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _upgrade(engine: Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the given kind, to be built at the schema before tenants."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    request.getfixturevalue("postgres_url")  # skips (or fails under CI) when the server is unreachable
    name = f"imts_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'create database "{name}"'))
    engine = make_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    engine.dispose()
    with admin.connect() as c:
        c.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def test_existing_workspace_upgrades_in_place(old_engine: Engine) -> None:
    _upgrade(old_engine, "0700_merge_heads")
    now = datetime.now(UTC)
    with old_engine.begin() as c:
        c.execute(
            text("INSERT INTO projects (id, name, tenant, created_at) VALUES (:i, :n, :t, :c)"),
            [
                {"i": "prj_a", "n": "default", "t": "default", "c": now},
                {"i": "prj_b", "n": "vision", "t": "acme", "c": now},
            ],
        )
        c.execute(
            text(
                "INSERT INTO base_models (id, name, path, architecture, num_params, source, checksum, info,"
                " created_at) VALUES ('bm_1', 'tiny', '/m', 'Llama', 1, 'test', 'x', '{}', :c)"
            ),
            {"c": now},
        )
        c.execute(
            text(
                "INSERT INTO datasets (id, project_id, name, format, description, created_at)"
                " VALUES ('ds_1', 'prj_a', 'math', 'sft', '', :c)"
            ),
            {"c": now},
        )
        c.execute(
            text(
                "INSERT INTO dataset_versions (id, dataset_id, number, content_hash, num_rows, shards,"
                " schema, stats, operation, params, report, created_at) VALUES ('dv_1', 'ds_1', 1, 'h', 0,"
                " '[]', '{}', '{}', 'import', '{}', '{}', :c)"
            ),
            {"c": now},
        )
        c.execute(
            text(
                "INSERT INTO model_versions (id, name, version, project_id, base_model_id, train_run_id,"
                " dataset_version_id, stage, spec, metrics, created_at) VALUES ('mv_1', 'm', 1, 'prj_a',"
                " 'bm_1', 'run_1', 'dv_1', 'none', '{}', '{}', :c)"
            ),
            {"c": now},
        )

    migrate(old_engine)  # what the first process after the upgrade does

    with old_engine.begin() as c:
        tenants = dict(c.execute(text("SELECT name, id FROM tenants")).tuples().all())
        assert set(tenants) == {"default", "acme"}
        owners = dict(c.execute(text("SELECT id, tenant_id FROM projects")).tuples().all())
        assert owners == {"prj_a": tenants["default"], "prj_b": tenants["acme"]}
        assert c.scalar(text("SELECT name FROM model_versions WHERE id = 'mv_1'")) == "m"
        # Another tenant may now have a project of the same name, and another project a model "m:1".
        c.execute(
            text(
                "INSERT INTO projects (id, tenant_id, name, created_at) VALUES ('prj_c', :t, 'default', :c)"
            ),
            {"t": tenants["acme"], "c": now},
        )
        c.execute(
            text(
                "INSERT INTO model_versions (id, name, version, project_id, base_model_id, train_run_id,"
                " dataset_version_id, stage, spec, metrics, created_at) VALUES ('mv_2', 'm', 1, 'prj_c',"
                " 'bm_1', 'run_2', 'dv_1', 'none', '{}', '{}', :c)"
            ),
            {"c": now},
        )
    with pytest.raises(IntegrityError), old_engine.begin() as c:  # but not twice in one tenant
        c.execute(
            text("INSERT INTO projects (id, tenant_id, name, created_at) VALUES ('prj_d', :t, 'vision', :c)"),
            {"t": tenants["acme"], "c": now},
        )
    with old_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    touched = ("tenants", "projects", "model_versions")
    assert [d for d in diff if any(t in str(d) for t in touched)] == []
