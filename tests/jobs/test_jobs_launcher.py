"""The worker launcher: workers forked from a process that imported them once, as the server runs them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.jobs.test_jobs_local import run_until

from imts.jobs import launcher, service
from imts.jobs.executors import WORKER_MODULE, LocalExecutor
from imts.jobs.loop import Scheduler
from imts.jobs.pool import Request
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.store.context import Context


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _gone(pid: int, within: float = 10.0) -> None:
    deadline = time.time() + within
    while Path(f"/proc/{pid}").exists():
        assert time.time() < deadline, f"process {pid} is still there"
        time.sleep(0.05)


@pytest.fixture
def forking() -> Iterator[launcher.Launcher]:
    """This process's launcher, as ``imts server`` starts it."""
    current = launcher.start([WORKER_MODULE, "imts.jobs.sleep"])
    yield current
    launcher.stop()


def test_workers_are_forked_by_the_launcher_and_run_as_started_directly(
    jws: Context, forking: launcher.Launcher, tmp_path: Path
) -> None:
    out = tmp_path / "done.txt"
    sub = Submission("sleep", SleepJob(seconds=2.0, append_to=str(out)), request=Request(cpus=2, memory_gb=1))
    job = service.submit(jws, sub)
    sched = Scheduler(jws)
    run_until(sched, lambda: service.get(jws, job).state == "running")
    pid = service.get(jws, job).worker_pid
    assert pid is not None
    status = _status(pid)
    assert int(status["PPid"]) == forking.pid  # forked, not a fresh interpreter
    assert os.getsid(pid) == pid  # its own session: one group to signal, survives the server
    assert os.getpriority(os.PRIO_PROCESS, pid) == jws.settings.worker_nice
    title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    assert [WORKER_MODULE.encode(), job.encode(), b"--attempt", b"1"] == title[2:6]
    # The worker found by its title while it runs, as a start timeout or a stop looks for it.
    assert LocalExecutor(jws.settings)._starting(job, 1) == pid
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")
    assert out.read_text().split() == [job]  # the workspace came from the request's environment
    text = service.logs(jws, job)[0].read_text()
    assert f"worker {pid} runs sleep job {job} attempt 1" in text and "attempt 1 succeeded" in text
    _gone(pid)  # reaped: no zombie left behind the launcher


def test_a_forked_worker_stops_on_request_and_its_ranks_get_their_own_environment(
    jws: Context, forking: launcher.Launcher
) -> None:
    sub = Submission("sleep", SleepJob(seconds=30.0), workers=2, request=Request(cpus=1, memory_gb=1))
    job = service.submit(jws, sub)
    sched = Scheduler(jws)

    def logs() -> str:
        return "".join(p.read_text() for p in service.logs(jws, job))

    run_until(sched, lambda: "rank 1 of" in logs())
    service.request(jws, job, "cancel")
    run_until(sched, lambda: service.get(jws, job).state == "cancelled", timeout=30)
    text = logs()
    assert "stopped on request" in text
    assert "rank 1 of" in text and "OMP_NUM_THREADS=1" in text  # from the request, not the launcher's


def test_a_dead_launcher_is_replaced_and_a_failing_one_falls_back_to_a_direct_start(
    jws: Context, forking: launcher.Launcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.kill(forking.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while forking.alive():  # polls: reaps our child
        assert time.time() < deadline
        time.sleep(0.05)
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=0.2)))
    sched = Scheduler(jws)
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")
    assert launcher._current is not None and launcher._current.pid != forking.pid  # a new launcher
    with pytest.raises(launcher.LaunchError, match="python -m MODULE"):
        launcher.launch(["/bin/true"], {}, os.devnull)

    def cannot(*args: object, **kwargs: object) -> int:
        raise launcher.LaunchError("the worker launcher could not start a worker: fork failed")

    monkeypatch.setattr(launcher, "launch", cannot)
    job = service.submit(jws, Submission("sleep", SleepJob(seconds=2.0)))
    run_until(sched, lambda: service.get(jws, job).state == "running")
    pid = service.get(jws, job).worker_pid
    assert pid is not None and int(_status(pid)["PPid"]) == os.getpid()  # started directly, by us
    run_until(sched, lambda: service.get(jws, job).state == "succeeded")


def test_the_launcher_leaves_when_its_parent_closes_the_pipe_and_imports_no_torch(tmp_path: Path) -> None:
    own = launcher.Launcher([WORKER_MODULE, "imts.jobs.sleep"])
    # A trivial module run as the worker would be: its exit code, its output in the log file.
    log_file = tmp_path / "w.log"
    pid = own.launch(["python", "-m", "json.tool", "--help"], dict(os.environ), str(log_file))
    _gone(pid, within=20)
    assert "usage:" in log_file.read_text()
    maps = Path(f"/proc/{own.pid}/maps").read_text()
    assert "libtorch" not in maps
    own.close()
    assert not own.alive()
