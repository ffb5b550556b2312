"""Fixtures for the jobs tests: workspaces with fast heartbeats and a small pool file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imts.core.settings import Settings
from imts.services.startup import local_context
from imts.store.context import Context


def jobs_ws(root: Path, cpus: int = 3, database_url: str | None = None, **tenants: dict) -> Context:
    pool = root / "pool.yaml"
    pool.write_text(
        yaml.safe_dump({"nodes": [{"name": "local", "cpus": cpus, "memory_gb": 8}], "tenants": tenants}),
        encoding="utf-8",
    )
    return local_context(
        Settings(
            workspace=root / "ws",
            database_url=database_url,
            pool_file=pool,
            heartbeat_s=0.2,
            heartbeat_timeout_s=4.0,
            start_timeout_s=45.0,
            scheduler_interval_s=0.1,
        )
    )


@pytest.fixture
def jws(tmp_path: Path) -> Context:
    """A SQLite workspace whose pool is 3 CPU slots."""
    return jobs_ws(tmp_path)
