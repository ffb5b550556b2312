"""Worker start cost: how long a job worker process takes from exec to its first store query.

Runs ``python -m imts.services.worker <no such job> --attempt 1`` N times against an already migrated
workspace (SQLite, and PostgreSQL when ``--postgres URL`` is given): the process imports IMTS, opens
the workspace (the schema check every worker does), finds no attempt to claim, and exits. Also times
the schema check alone (``session_factory`` in a fresh process).

    PYTHONPATH=src python benchmarks/worker_start.py [--runs 10] [--postgres postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imts.core.settings import Settings
from imts.store.workspace import Workspace


def worker_runs(env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "imts.services.worker", "job_none", "--attempt", "1"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        out.append(time.perf_counter() - t0)
    return out


CHECK = """
import sys, time
from imts.store.db import make_engine, session_factory
make_engine(sys.argv[1]).dispose()  # driver imports and first connect outside the timing
t0 = time.perf_counter()
session_factory(sys.argv[1])
print(time.perf_counter() - t0)
"""


def check_alone(url: str, runs: int) -> list[float]:
    """The schema check of a fresh process (what every worker pays), imports of the check included."""
    return [
        float(subprocess.run([sys.executable, "-c", CHECK, url], capture_output=True, check=True).stdout)
        for _ in range(runs)
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--postgres", default=None, help="URL of an empty PostgreSQL database")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
        for name, url in targets:
            st = Settings(workspace=Path(tmp) / name, database_url=url)
            Workspace(st)  # migrated once, as the scheduler's workspace would be
            env = {k: v for k, v in os.environ.items() if not k.startswith("IMTS_")}
            env["IMTS_WORKSPACE"] = str(st.workspace)
            if url:
                env["IMTS_DATABASE_URL"] = url
            starts = worker_runs(env, args.runs)
            checks = check_alone(st.db_url, args.runs)
            print(
                f"{name}: worker start median {statistics.median(starts) * 1000:.0f} ms "
                f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}); "
                f"schema check alone median {statistics.median(checks) * 1000:.1f} ms "
                f"(min {min(checks) * 1000:.1f})"
            )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
