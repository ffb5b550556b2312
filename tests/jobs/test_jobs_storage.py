"""Per-project storage quota: measured on disk, refused at submit, held back in the scheduler, shown."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from imts.core.settings import Settings
from imts.data.ingest import import_file
from imts.data.jobs import SplitJob
from imts.data.versions import shard_path
from imts.jobs import service, storage
from imts.jobs.loop import Scheduler
from imts.jobs.service import QuotaError, Submission
from imts.jobs.sleep import SleepJob
from imts.services.startup import local_context
from imts.store.context import Context as Workspace
from imts.store.models import Run

MIB = 2**20


def quota_ws(tmp_path: Path, storage_gb: float) -> Workspace:
    pool = tmp_path / "pool.yaml"
    pool.write_text(
        yaml.safe_dump(
            {
                "nodes": [{"name": "local", "cpus": 2, "memory_gb": 8}],
                "projects": {"default/default": {"storage_gb": storage_gb}},
            }
        )
    )
    return local_context(Settings(workspace=tmp_path / "ws", pool_file=pool, storage_refresh_s=0))


def set_quota(ws: Workspace, storage_gb: float) -> None:
    assert ws.settings.pool_file is not None
    data = yaml.safe_load(ws.settings.pool_file.read_text())
    data["projects"]["default/default"]["storage_gb"] = storage_gb
    ws.settings.pool_file.write_text(yaml.safe_dump(data))


def test_storage_is_measured_refused_held_back_and_shown(tmp_path: Path, math_file: Path) -> None:
    ws = quota_ws(tmp_path, storage_gb=1.0)
    v = import_file(ws, math_file, name="math")
    with ws.session() as s:  # a run of this project with a 3 MiB checkpoint
        s.add(Run(id="run_x", project_id=ws.project_id, kind="train", status="succeeded"))
    ckpt = ws.artifacts.path("runs/run_x/checkpoints/step-000010")
    ckpt.mkdir(parents=True)
    (ckpt / "adapter.safetensors").write_bytes(b"\0" * 3 * MIB)
    (ckpt / "hardlink.safetensors").hardlink_to(ckpt / "adapter.safetensors")  # stored once

    used = storage.measure(ws)["default/default"]
    assert used.datasets == sum(shard_path(ws, d).stat().st_size for d in v.shards) > 0
    assert used.runs == 3 * MIB and used.total == used.datasets + used.runs

    split = Submission("split", SplitJob(data="math@1"))
    queued = service.submit(ws, split)  # under quota: accepted
    set_quota(ws, 0.002)  # 2 MiB: the project is over
    with pytest.raises(
        QuotaError, match=r"project 'default/default' uses 3\.\d MiB of its 0\.002 GiB storage quota"
    ):
        service.submit(ws, split)
    service.submit(ws, Submission("sleep", SleepJob(seconds=0)))  # does not write: accepted

    class NoStart:  # the sleep job may be placed; nothing needs to run for this test
        name = "none"

        def start(self, *a: object) -> None: ...
        def stop(self, *a: object) -> None: ...
        def kill(self, *a: object) -> None: ...

    Scheduler(ws, executor=NoStart()).once()
    row = service.get(ws, queued)
    assert row.state == "queued" and "uses 3." in row.reason and "storage quota" in row.reason
    from imts.cli.pool import render
    from imts.services.pool import pool_state, quota

    console = Console(width=200, file=io.StringIO())
    console.print(render(pool_state(ws), quota(ws)))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "projects (storage)" in shown and "0.002 GiB (full: training refused)" in shown
    set_quota(ws, 1.0)
    Scheduler(ws, executor=NoStart()).once()
    assert service.get(ws, queued).state == "starting"


def test_two_tenants_projects_of_one_name_keep_their_own_quota_and_usage(
    tmp_path: Path, math_file: Path
) -> None:
    """Project names repeat across tenants: each tenant's 'default' is measured, limited and set apart."""
    from imts.core.errors import InputError
    from imts.jobs.pool import load_pool
    from imts.services import pool, tenancy
    from imts.services.pool import QuotaUpdate
    from imts.store.context import platform_context, tenant_context

    ws = quota_ws(tmp_path, storage_gb=0.000001)  # tenant 'default''s project 'default': ~1 KiB
    tenancy.create_tenant(platform_context(ws.ws, "root"), "other")
    other_admin = tenant_context(ws.ws, "other", "root", "admin", platform_admin=True)
    tenancy.create_project(other_admin, "default")
    other = local_context(ws.settings.model_copy(update={"tenant": "other"}))
    import_file(ws, math_file, name="math")  # only tenant 'default' stores anything

    used = storage.measure(ws)
    assert used["default/default"].total > 0 and used.get("other/default") is None
    split = Submission("split", SplitJob(data="math@1"))
    with pytest.raises(QuotaError, match=r"project 'default/default' uses"):
        service.submit(ws, split)
    import_file(other, math_file, name="math")
    assert service.submit(other, split)  # the other tenant's 'default' has no quota: accepted
    mine, theirs = pool.quota(ws).projects["default"], pool.quota(other).projects["default"]
    assert mine.storage_gb == 0.000001 and theirs.storage_gb is None
    assert theirs.used_bytes == storage.measure(ws)["other/default"].total  # its own bytes, not summed

    pool.set_quota(other, QuotaUpdate(projects={"default": 7}))  # the other tenant sets its own
    spec = load_pool(ws.settings.pool_file)
    assert (
        spec.project("other/default").storage_gb == 7
        and spec.project("default/default").storage_gb == 0.000001
    )

    bare = tmp_path / "bare.yaml"
    bare.write_text(
        yaml.safe_dump({"nodes": [{"name": "n", "cpus": 2, "memory_gb": 8}], "projects": {"nlp": {}}})
    )
    with pytest.raises(InputError, match="'nlp' must be TENANT/PROJECT"):
        load_pool(bare)
