"""Executors: where workers run. One Protocol; the local one starts OS processes on this machine.

The Ray executor (``jobs.ray_executor``, ``executor: ray`` in the pool file) implements the same three
calls with placement groups and actors on a Ray cluster. Kubernetes manifests for
Volcano and Kubeflow are rendered by ``jobs.k8s`` from the same job. Every worker runs
``python -m imts.services.worker JOB_ID --attempt N``: that entry module lives above the domain
packages, so it knows every job kind while this package imports none of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imts.core.settings import Settings
from imts.jobs import launcher
from imts.jobs.pool import Request, Slot

log = logging.getLogger(__name__)

WORKER_MODULE = "imts.services.worker"  # the worker entry point (``python -m``), for every executor


@dataclass(frozen=True)
class WorkerJob:
    """What an executor knows of a job: its gang, and where its latest reporting worker runs."""

    id: str
    kind: str
    tenant: str
    priority_class: str
    workers: int
    request: Request
    max_retries: int
    report_attempt: int | None = None  # the attempt whose worker claimed the job last
    worker_pid: int | None = None
    worker_host: str | None = None


class Executor(Protocol):
    """Starts, stops and kills the workers of job attempts."""

    name: str

    def start(self, job: WorkerJob, attempt: int, slots: list[Slot]) -> None:
        """Launch the worker of ``attempt``; it claims the attempt in the store itself."""

    def stop(self, job: WorkerJob, attempt: int) -> None:
        """Ask the attempt's worker to checkpoint at its next step boundary and exit."""

    def kill(self, job: WorkerJob, attempt: int) -> None:
        """Kill whatever is left of an attempt presumed lost."""


def worker_env(slots: list[Slot], base: dict[str, str], rank: int = 0, world: int = 1) -> dict[str, str]:
    """Environment of a worker process: threads and visible GPUs from its allocation.

    Several slots: one process that launches a rank per slot itself (a data-parallel train job) and
    shares the threads and GPUs of all of them out between its ranks.
    """
    env = dict(base)
    threads = str(max(1, sum(s.cpus for s in slots)))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, IMTS_THREADS=threads)
    whole = [g.split(":")[1] for s in slots for g in s.gpus if g.count(":") == 1]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(whole)  # empty: no GPU for this worker
    env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    return env


def log_path(settings: Settings, job_id: str, attempt: int) -> Path:
    return settings.artifacts_dir / "jobs" / job_id / f"attempt-{attempt}.log"


class LocalExecutor:
    """Workers as separate OS processes on this machine, each in its own session with its own log."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = socket.gethostname()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, job: WorkerJob, attempt: int, slots: list[Slot]) -> None:
        self.reap()
        log_file = log_path(self.settings, job.id, attempt)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("IMTS_")}
        # The worker must see this workspace even when settings were built in code (tests, embedding).
        base.update(
            IMTS_WORKSPACE=str(self.settings.workspace),
            IMTS_MODEL_CACHE=str(self.settings.model_cache),
            IMTS_HEARTBEAT_S=str(self.settings.heartbeat_s),
        )
        if self.settings.database_url:
            base["IMTS_DATABASE_URL"] = self.settings.database_url
        env = worker_env(slots[:1], base, 0, len(slots))  # rank 0's own slot; see worker.py
        cmd = [sys.executable, "-m", WORKER_MODULE, job.id, "--attempt", str(attempt)]
        try:  # forked by the server's launcher, when it runs one: no imports to pay
            if launcher.launch(cmd, env, str(log_file), self.settings.worker_nice) is not None:
                return
        except launcher.LaunchError as exc:
            log.warning("%s; starting the worker of %s directly", exc, job.id)
        nice = shutil.which("nice") if self.settings.worker_nice else None
        if nice:  # `nice` execs the worker: the same pid, a lower priority from its first instruction
            cmd = [nice, "-n", str(self.settings.worker_nice), *cmd]
        with open(log_file, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # survives the scheduler being killed; one group to signal
            )
        self._children[proc.pid] = proc

    def _pid(self, job: WorkerJob, attempt: int) -> int | None:
        if job.report_attempt != attempt or job.worker_pid is None or job.worker_host != self.host:
            return None
        try:  # the pid must still be this job's worker, not a recycled pid
            cmd = Path(f"/proc/{job.worker_pid}/cmdline").read_bytes()
        except OSError:
            return None
        return job.worker_pid if job.id.encode() in cmd else None

    def _starting(self, job_id: str, attempt: int) -> int | None:
        """A worker of this attempt that has not reported yet (still starting up), by its command line.

        Without this, a start timeout would requeue the job while the slow worker lives on; on a loaded
        machine every requeue then adds a process, which slows starts further.
        """
        want = (WORKER_MODULE.encode(), job_id.encode(), b"--attempt", str(attempt).encode())
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:  # arguments apart (exec'd), or one process title (forked by the launcher)
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split()
            except OSError:
                continue
            if all(w in args for w in want):
                return int(entry.name)
        return None

    def stop(self, job: WorkerJob, attempt: int) -> None:
        pid = self._pid(job, attempt) or self._starting(job.id, attempt)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def kill(self, job: WorkerJob, attempt: int) -> None:
        pid = self._pid(job, attempt) or self._starting(job.id, attempt)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        """Collect exited children so they do not linger as zombies."""
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]


EXECUTORS = {"local": LocalExecutor}
