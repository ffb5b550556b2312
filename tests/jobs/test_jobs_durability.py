"""Crashes and concurrency: SIGKILLed schedulers, two schedulers on one PostgreSQL, compare-and-set."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.jobs.conftest import jobs_ws

from imts.jobs import service, store
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.store.models import JobRecord
from imts.store.workspace import Workspace


def scheduler_proc(ws: Workspace, log: Path) -> subprocess.Popen[bytes]:
    st = ws.settings
    env = {
        **os.environ,
        "IMTS_WORKSPACE": str(st.workspace),
        "IMTS_POOL_FILE": str(st.pool_file),
        "IMTS_HEARTBEAT_S": str(st.heartbeat_s),
        "IMTS_HEARTBEAT_TIMEOUT_S": str(st.heartbeat_timeout_s),
        "IMTS_START_TIMEOUT_S": str(st.start_timeout_s),
        "IMTS_SCHEDULER_INTERVAL_S": str(st.scheduler_interval_s),
    }
    env.pop("IMTS_DATABASE_URL", None)
    if st.database_url:
        env["IMTS_DATABASE_URL"] = st.database_url
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "imts", "scheduler"], env=env, stdout=out, stderr=out)


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM each scheduler; each must leave after its current pass (giving its lease back) within a
    minute. One that does not is killed, so a hang fails the test instead of eating the suite."""
    for p in procs:
        p.terminate()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=60))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


def all_finished(ws: Workspace, ids: list[str]) -> bool:
    return all(r.state == "succeeded" for r in service.list_jobs(ws, limit=1000) if r.id in ids)


def test_sigkill_scheduler_20_times_every_job_finishes_exactly_once(tmp_path: Path) -> None:
    ws = jobs_ws(tmp_path, cpus=4)
    ws.settings.start_timeout_s = 45.0  # a worker start (imports, migration check) on a loaded 2-core machine
    done = tmp_path / "done.txt"
    ids = [
        service.submit(ws, Submission("sleep", SleepJob(seconds=0.1, append_to=str(done)))) for _ in range(50)
    ]
    rng = random.Random(0)
    # Generous: 50 real worker processes on 2 cores; under a loaded CI machine each start takes seconds.
    kills, deadline = 0, time.time() + 600
    log = tmp_path / "scheduler.log"
    while kills < 20 and not all_finished(ws, ids):
        proc = scheduler_proc(ws, log)
        time.sleep(rng.uniform(0.2, 1.2))  # kill at any moment: starting up, mid-pass, idle
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = scheduler_proc(ws, log)
    try:
        while not all_finished(ws, ids):
            assert time.time() < deadline, f"not finished: {Counter(r.state for r in service.list_jobs(ws))}"
            time.sleep(0.5)
    finally:
        assert stop([proc]) == [0]
    assert kills == 20
    finished = Counter(done.read_text().split())
    assert set(finished) == set(ids) and set(finished.values()) == {1}  # each ran to the end exactly once
    assert all(r.retries == 0 for r in service.list_jobs(ws))  # no job was charged for the crashes


def test_two_schedulers_on_postgres_never_start_a_job_twice(tmp_path: Path, postgres_url: str) -> None:
    ws = jobs_ws(tmp_path, cpus=4, database_url=postgres_url)
    done = tmp_path / "done.txt"
    ids = [
        service.submit(ws, Submission("sleep", SleepJob(seconds=0.1, append_to=str(done)))) for _ in range(16)
    ]
    procs = [scheduler_proc(ws, tmp_path / f"s{i}.log") for i in range(2)]
    try:
        deadline = time.time() + 420
        while not all_finished(ws, ids):
            assert time.time() < deadline, f"not finished: {Counter(r.state for r in service.list_jobs(ws))}"
            time.sleep(0.3)
    finally:
        assert stop(procs) == [0, 0]  # a clean stop on SIGTERM, even mid-pass on PostgreSQL
    finished = Counter(done.read_text().split())
    assert set(finished) == set(ids) and set(finished.values()) == {1}
    assert all(r.attempt == 1 for r in service.list_jobs(ws))


def test_compare_and_set_lets_one_writer_win(tmp_path: Path, postgres_url: str) -> None:
    ws = jobs_ws(tmp_path, database_url=postgres_url)
    job_id = service.submit(ws, Submission("sleep", SleepJob(seconds=0)))
    with ws.session() as s:  # the scheduler's own read: the row with its version
        row = s.get(JobRecord, job_id)
    assert row is not None
    job = store.to_job(row)
    job.attempt = 1
    assert store.persist(ws, job, row.version, False, time.time())
    assert not store.persist(ws, job, row.version, False, time.time())  # a second scheduler, same read
    assert store.claim(ws, job_id, 1, 123, "h") is None  # state is still queued: nothing to claim
    assert store.acquire_lease(ws, "a", 30, "t") and not store.acquire_lease(ws, "b", 30, "t")
    store.release_lease(ws, "a", "t")
    assert store.acquire_lease(ws, "b", 30, "t")
