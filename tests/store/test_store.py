"""The metadata store on SQLite and on the local PostgreSQL; the artifact store's atomic commits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.data.versions import list_versions, resolve
from imts.store.artifacts import LocalArtifactStore
from imts.store.models import Metric, Run, RunEvent
from imts.store.workspace import Workspace


def test_schema_migrated(any_ws: Workspace) -> None:
    from imts.store.db import session_factory

    engine = session_factory(any_ws.settings.db_url).kw["bind"]
    tables = set(inspect(engine).get_table_names())
    assert {
        "projects",
        "base_models",
        "datasets",
        "dataset_versions",
        "dataset_version_parents",
        "runs",
        "metrics",
        "run_events",
        "eval_items",
        "model_versions",
        "alembic_version",
    } <= tables


def test_versions_lineage_and_runs_roundtrip(any_ws: Workspace, math_file: Path) -> None:
    v1 = import_file(any_ws, math_file, name="m")
    v2 = split_version(any_ws, v1, seed=1)
    assert [v.ref for v in list_versions(any_ws, "m")] == ["m@1", "m@2"]
    assert resolve(any_ws, "m@2:test").version.parents == [v1.id]
    assert resolve(any_ws, v2.id).version.ref == "m@2"
    with any_ws.session() as s:
        s.add(
            Run(
                id="run_t1",
                project_id=any_ws.project_id,
                kind="train",
                spec={"lr": 0.1, "名": "中文"},
                dataset_version_id=v2.id,
            )
        )
        s.flush()
        s.add_all([Metric(run_id="run_t1", key="loss", step=i, value=1.0 / (i + 1)) for i in range(5)])
        s.add(RunEvent(run_id="run_t1", step=2, kind="checkpoint", message="saved"))
    with any_ws.session() as s:
        run = s.get(Run, "run_t1")
        assert run is not None and run.spec["名"] == "中文"
        losses = s.scalars(select(Metric.value).where(Metric.run_id == "run_t1").order_by(Metric.step)).all()
        assert losses == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])


def test_failed_transaction_leaves_nothing(any_ws: Workspace) -> None:
    with pytest.raises(RuntimeError), any_ws.session() as s:
        s.add(Run(id="run_t2", project_id=any_ws.project_id, kind="train", spec={}))
        s.flush()
        raise RuntimeError("boom")
    with any_ws.session() as s:
        assert s.get(Run, "run_t2") is None


def test_artifact_commit_is_atomic_and_sweeps_dead_staging(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    with store.staging() as stage:
        (stage / "f.txt").write_text("x")
        store.commit(stage / "f.txt", "k/f.txt")
    assert store.path("k/f.txt").read_text() == "x"
    assert not any(store.path(".staging").iterdir())
    with store.staging() as stage:
        (stage / "g.txt").write_text("y")
        with pytest.raises(FileExistsError):
            store.commit(stage / "g.txt", "k/f.txt")
        assert store.commit(stage / "g.txt", "k/f.txt", content_addressed=True).read_text() == "x"
    with pytest.raises(ValueError, match="stay inside"):
        store.path("../escape")
    # A staging folder of a process that no longer exists is swept by the start-up recovery
    # (opening the store scans nothing).
    dead = store.path(".staging") / f"{2**22 + os.getpid()}-stg_x"
    dead.mkdir()
    reopened = LocalArtifactStore(tmp_path / "a")
    assert dead.exists() and reopened.sweep() == 1 and not dead.exists()
