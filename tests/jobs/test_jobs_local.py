"""Real worker processes on the local executor: gang, pause/resume, lost workers, logs."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imts.core.errors import ImtsError
from imts.jobs import service
from imts.jobs.loop import Scheduler
from imts.jobs.pool import Request
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.jobs.views import JobView
from imts.store.workspace import Workspace


def run_until(
    sched: Scheduler, cond: Callable[[], bool], timeout: float = 60.0, each: Callable[[], None] | None = None
) -> None:
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, "timed out"
        sched.tick()
        if each:
            each()
        time.sleep(0.1)


def states(ws: Workspace, ids: list[str]) -> list[str]:
    return [service.get(ws, i).state for i in ids]


def test_sleep_job_runs_in_its_own_process_with_log(jws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "done.txt"
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=0.3, append_to=str(out))))
    sched = Scheduler(jws)
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")
    row = service.get(jws, job)
    assert out.read_text().split() == [job]
    assert row.worker_pid != os.getpid() and row.data["result"] == {"slept_s": 0.3}
    text = service.logs(jws, job)[0].read_text()
    assert f"runs sleep job {job} attempt 1" in text
    kinds = [e.kind for e in service.events(jws, job)]
    assert kinds[:2] == ["queued", "starting"] and kinds[-1] == "succeeded"


def test_gang_two_2_worker_jobs_on_3_slots_never_hold_a_slot_waiting(jws: Workspace) -> None:
    sub = Submission("sleep", SleepJob(seconds=1.5), workers=2, request=Request(cpus=1, memory_gb=1))
    a, b = service.submit(jws, sub), service.submit(jws, sub)
    sched = Scheduler(jws)
    seen_both_running = False

    def check() -> None:
        nonlocal seen_both_running
        rows = [service.get(jws, j) for j in (a, b)]
        holding = [r for r in rows if r.state in ("starting", "running", "preempting")]
        seen_both_running |= len(holding) == 2
        for r in rows:  # a waiting job holds nothing
            if r.state == "queued":
                assert r.slots is None
        assert sum(len(r.slots or []) for r in holding) <= 3

    run_until(sched, lambda: states(jws, [a, b]) == ["succeeded"] * 2, each=check)
    assert not seen_both_running
    ra, rb = service.get(jws, a), service.get(jws, b)
    assert rb.started_ts >= ra.finished_ts or ra.started_ts >= rb.finished_ts  # one after the other
    logs = service.logs(jws, a)[0].read_text()
    assert "rank 1 of" in logs and "OMP_NUM_THREADS=1" in logs


def test_pause_resume_keeps_progress_and_cancel(jws: Workspace) -> None:
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=3.0)))
    sched = Scheduler(jws)
    run_until(sched, lambda: (service.get(jws, job).progress or {}).get("done", 0) > 0.5)
    service.request(jws, job, "pause")
    run_until(sched, lambda: service.get(jws, job).state == "paused")
    done = service.get(jws, job).data["done_s"]
    assert done > 0.5
    service.request(jws, job, "resume")
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")
    row = service.get(jws, job)
    assert row.attempt == 2 and row.data["ran_s"] < 3.0 + 2.0  # second attempt continued, not restarted
    other = service.submit(jws, Submission("sleep", SleepJob(seconds=30)))
    run_until(sched, lambda: service.get(jws, other).state == "running")
    service.request(jws, other, "cancel")
    run_until(sched, lambda: service.get(jws, other).state == "cancelled", timeout=20)
    service.request(jws, other, "delete")
    run_until(sched, lambda: not service.list_jobs(jws, state="cancelled"))
    assert not (jws.settings.artifacts_dir / "jobs" / other).exists()  # its logs went with it


def test_sigkilled_worker_is_detected_and_retried(jws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "done.txt"
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=2.0, append_to=str(out)), max_retries=1))
    sched = Scheduler(jws)
    run_until(sched, lambda: service.get(jws, job).state == "running")
    os.kill(service.get(jws, job).worker_pid, signal.SIGKILL)
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")
    row: JobView = service.get(jws, job)
    assert row.retries == 1 and row.attempt == 2
    assert any("no heartbeat" in e.message for e in service.events(jws, job))
    assert out.read_text().split() == [job]


def test_failing_job_retries_then_fails(jws: Workspace) -> None:
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=0, fail=True), max_retries=1))
    sched = Scheduler(jws)
    run_until(sched, lambda: service.get(jws, job).state == "failed")
    row = service.get(jws, job)
    assert row.attempt == 2 and "asked to fail" in (row.error or "")


def test_a_stop_the_executor_failed_to_deliver_is_sent_again(jws: Workspace) -> None:
    """A pause whose SIGTERM never reached the worker (the executor failed: e.g. a Ray bridge that did
    not answer in time) is delivered on a later pass; the job still pauses, it does not run to its end."""
    from imts.jobs.executors import LocalExecutor

    class FlakyStop(LocalExecutor):
        failed = 0

        def stop(self, job: Any, attempt: int) -> None:
            if not self.failed:
                self.failed += 1
                raise ImtsError("ray executor: no answer to 'signal' within 15s")
            super().stop(job, attempt)

    ex = FlakyStop(jws.settings)
    sched = Scheduler(jws, executor=ex)
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=30.0)))
    run_until(sched, lambda: (service.get(jws, job).progress or {}).get("done", 0) > 0.3)
    service.request(jws, job, "pause")
    run_until(sched, lambda: service.get(jws, job).state == "paused", timeout=20)
    assert ex.failed == 1 and service.get(jws, job).data["done_s"] < 20
    assert any("Stop failed" in e.message for e in service.events(jws, job))


def test_a_worker_runs_niced(jws: Workspace) -> None:
    """``IMTS_WORKER_NICE``: the worker itself, not a wrapper, runs that many steps nicer than the
    scheduler (the tests' own setting is 0, see tests/conftest.py)."""
    from imts.jobs.executors import LocalExecutor

    executor = LocalExecutor(jws.settings.model_copy(update={"worker_nice": 5}))
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=3)))
    sched = Scheduler(jws, executor=executor)
    run_until(sched, lambda: service.get(jws, job).worker_pid is not None)
    pid = service.get(jws, job).worker_pid
    stat = Path(f"/proc/{pid}/stat").read_text()
    assert int(stat.rsplit(")", 1)[1].split()[16]) == min(19, os.nice(0) + 5)
    assert b"imts.services.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")
