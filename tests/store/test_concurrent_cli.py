"""Concurrent commands on a new workspace, as a CI fan-out runs them (issue 20, item 6): real `imts`
processes started together, on SQLite and on the local PostgreSQL.

They all find an empty database and migrate it at once (serialised: a lock file for SQLite, an
advisory lock for PostgreSQL), all create the first tenant and project, and all import into one dataset
name, so they race for the same version number (the loser retries with the next one). Before, most of
them died with "table alembic_version already exists" or a UNIQUE constraint traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.conftest import PG_ADMIN_URL, write_jsonl

PROCESSES = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the workspace's own SQLite file), or a new, empty PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    request.getfixturevalue("postgres_url")  # skips (or fails under CI) when the server is unreachable
    name = f"imts_race_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'create database "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def test_parallel_first_use_and_imports_all_succeed(tmp_path: Path, database_url: str | None) -> None:
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200"}
    env.pop("IMTS_DATABASE_URL", None)
    if database_url:
        env["IMTS_DATABASE_URL"] = database_url
    files = [
        write_jsonl(
            tmp_path / f"part{k}.jsonl", [{"prompt": f"part {k} row {n}", "response": "1"} for n in range(5)]
        )
        for k in range(PROCESSES)
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "imts", "--project", "ci", "data", "import", str(f), "--name", "math"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    outputs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for rc, out, err in outputs:
        assert rc == 0 and "Traceback" not in err, out + err
    numbers = sorted(int(m) for _, out, _ in outputs for m in re.findall(r"as math@(\d+)", out))
    assert numbers == list(range(1, PROCESSES + 1))

    listed = subprocess.run(
        [sys.executable, "-m", "imts", "--project", "ci", "data", "list", "math", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count('"operation": "import"') == PROCESSES
