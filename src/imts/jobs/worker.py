"""The worker: ``main`` behind ``python -m imts.services.worker JOB_ID --attempt N`` (that module
registers every job kind first; this package imports no domain package).

Claims the attempt (exits at once if it is no longer current), heartbeats from a thread, runs the
job's kind, and reports how it ended. SIGTERM means "checkpoint and stop": runners that can resume see
``should_stop()`` turn true at their next step boundary; others are interrupted where they are.
A gang of N workers: this process is rank 0 and starts ranks 1..N-1 with their own allocations, except
for a data-parallel train job, whose recipe launches its ranks itself over the gang's threads and GPUs,
and except when the executor places the ranks itself (``--external-ranks``: Ray, one actor per rank).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from imts.core.errors import Interrupted
from imts.core.settings import Settings
from imts.jobs import registry, store
from imts.jobs.executors import WORKER_MODULE, worker_env
from imts.jobs.pool import Slot
from imts.jobs.registry import JobContext
from imts.store.context import context_of_project
from imts.store.workspace import Workspace

LOG_EVERY_S = 2.0  # a job log's progress lines: at most one this often (and the last one)


def progress_line(description: str, done: float, total: float | None, fields: dict[str, Any]) -> str:
    """``train: step 12/40 loss=1.234 lr=0.0002 ...``: one line of a task's progress for the log."""
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
    of = f"/{total:g}" if total else ""
    return f"{description}: {done:g}{of} {shown}".rstrip()


class HeartbeatProgress:
    """Progress that the heartbeat carries to the store (the CLI shows bars and ETA from it)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    @contextmanager
    def task(self, description: str, total: float | None) -> Iterator[Any]:
        self.state = {"task": description, "done": 0.0, "total": total, "fields": {}}
        print(f"[{time.strftime('%H:%M:%S')}] {description} (total {total})", flush=True)
        progress = self

        last_line = [0.0]

        class _Task:
            def advance(self, n: float = 1, **fields: Any) -> None:
                progress.state["done"] = done = progress.state.get("done", 0.0) + n
                if fields:
                    progress.state["fields"] = {
                        k: v for k, v in fields.items() if isinstance(v, int | float | str)
                    }
                # The log (``imts jobs logs -f``) gets the progress too, a line every few seconds.
                now = time.monotonic()
                if fields and (now - last_line[0] >= LOG_EVERY_S or (total and done >= total)):
                    last_line[0] = now
                    print(
                        f"[{time.strftime('%H:%M:%S')}] {progress_line(description, done, total, fields)}",
                        flush=True,
                    )

        yield _Task()

    def log(self, message: str) -> None:
        print(message, flush=True)


DIST_STORE = "IMTS_DIST_STORE"  # the rendezvous file of ranks placed apart (on the shared artifact store)


def rendezvous(settings: Settings, job_id: str, attempt: int) -> str:
    """Where the ranks of one attempt placed apart by the executor meet (torch's FileStore): a file
    in the artifact store, which every node reaches, fresh for each attempt."""
    path = settings.artifacts_dir / "jobs" / job_id / f"rendezvous-{attempt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def run_rank(job_id: str, rank: int, attempt: int = 0, load_kind: Callable[[str], None] | None = None) -> int:
    """A non-zero rank of a gang: a rank of the kind's own group when the executor placed it apart
    (``run_rank`` of a self-launching kind), else a sleeping companion (gangs of the drills)."""
    settings = Settings()
    ws = Workspace(settings)
    from imts.store.models import JobRecord

    with ws.session() as s:
        row = s.get(JobRecord, job_id)
        seconds = float(row.spec.get("seconds", 0)) if row else 0.0
    if row is not None and load_kind is not None:
        load_kind(row.kind)
    kind = registry.find(row.kind) if row is not None else None
    if row is not None and kind is not None and kind.run_rank is not None and attempt:
        # Stops come from rank 0 through the group (every rank stops at the same step): not SIGTERM.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.environ[DIST_STORE] = rendezvous(settings, job_id, attempt)
        print(f"rank {rank} of {job_id} attempt {attempt}: pid {os.getpid()}", flush=True)
        job = JobContext(
            context_of_project(ws, row.project_id, principal=f"job:{row.id}"),
            row.id,
            attempt,
            dict(row.data),
            lambda d: None,  # rank 0 alone saves
            lambda: False,
            HeartbeatProgress(),
            row.submitted_ts,
        )
        try:
            kind.run_rank(job, kind.parse(row.spec))
        except BaseException:
            traceback.print_exc()
            return 1
        return 0
    print(
        f"rank {rank} of {job_id}: pid {os.getpid()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        flush=True,
    )
    time.sleep(seconds)
    return 0


def main(argv: list[str] | None = None, load_kind: Callable[[str], None] | None = None) -> int:
    """Run attempt ``--attempt`` of a job (or one of its ranks); ``load_kind`` registers a kind by name
    (the jobs package cannot import the domain packages that define kinds)."""
    ap = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    ap.add_argument("job_id")
    ap.add_argument("--attempt", type=int, required=True)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument(
        "--external-ranks", action="store_true", help="the executor starts ranks 1..N-1 (Ray bundles)"
    )
    args = ap.parse_args(argv)
    if args.rank:
        return run_rank(args.job_id, args.rank, args.attempt, load_kind)
    settings = Settings()
    ws = Workspace.open(settings)
    row = store.claim(ws, args.job_id, args.attempt, os.getpid(), socket.gethostname())
    if row is None:
        print(f"attempt {args.attempt} of {args.job_id} is not current: nothing to do", flush=True)
        return 0
    print(f"worker {os.getpid()} runs {row.kind} job {row.id} attempt {args.attempt}", flush=True)
    if load_kind is not None:
        load_kind(row.kind)
    kind = registry.find(row.kind)
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()
        if kind is None or not kind.stoppable:  # cannot checkpoint: stop now, the next attempt starts over
            raise Interrupted()

    signal.signal(signal.SIGTERM, on_term)
    progress = HeartbeatProgress()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(settings.heartbeat_s):
            try:
                store.heartbeat(ws, row.id, args.attempt, progress.state)
            except Exception as exc:  # a database hiccup must not kill the job; the next beat retries
                print(f"heartbeat failed: {exc}", flush=True)

    threading.Thread(target=beat, daemon=True).start()
    started = time.time()
    ranks: list[subprocess.Popen[bytes]] = []
    outcome, error, result = "succeeded", None, {}
    try:
        if kind is None:
            kind = registry.get(row.kind)  # raises: unknown kind
        if row.state == "preempting":
            raise Interrupted()  # asked to stop before it began
        slots = [Slot.from_json(s) for s in row.slots or []]
        companions = range(1 if not args.external_ranks else len(slots), len(slots))
        if kind.self_launching and args.external_ranks and kind.run_rank is not None:
            # Ranks 1..N-1 run apart (the executor placed them, e.g. on other Ray nodes): rank 0 of
            # the group is this process, on its own slot; they meet at the attempt's rendezvous file.
            os.environ.update(worker_env(slots[:1], {}, 0, len(slots)))
            os.environ[DIST_STORE] = rendezvous(settings, row.id, args.attempt)
            companions = range(0)
        elif kind.self_launching:  # set before torch is imported: it reads the thread count once
            os.environ.update(worker_env(slots, {}, 0, len(slots)))
            companions = range(0)
        for rank in companions:
            cmd = [
                sys.executable,
                "-m",
                WORKER_MODULE,
                row.id,
                "--attempt",
                str(args.attempt),
                "--rank",
                str(rank),
            ]
            ranks.append(
                subprocess.Popen(cmd, env=worker_env([slots[rank]], dict(os.environ), rank, len(slots)))
            )
        spec = kind.parse(row.spec)
        job = JobContext(
            context_of_project(ws, row.project_id, principal=f"job:{row.id}"),
            row.id,
            args.attempt,
            dict(row.data),
            lambda d: _save(ws, row.id, args.attempt, job, d),
            stop.is_set,
            progress,
            row.submitted_ts,
            lambda: _stop_reason(ws, row.id),
        )
        result = kind.run(job, spec).model_dump(mode="json")
        codes = [p.wait() for p in ranks]
        if any(codes):
            outcome, error = "failed", f"worker ranks exited with {codes}"
    except Interrupted as exc:
        outcome = "stopped"
        print(f"stopped on request ({exc})", flush=True)
    except BaseException as exc:
        traceback.print_exc()
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for p in ranks:
            if p.poll() is None:
                p.terminate()
                p.wait()
        done.set()
    store.finish(ws, row.id, args.attempt, outcome, error, time.time() - started, result)
    print(f"attempt {args.attempt} {outcome}" + (f": {error}" if error else ""), flush=True)
    return 0


def _stop_reason(ws: Workspace, job_id: str) -> str | None:
    from imts.store.models import JobRecord

    with ws.session() as s:
        return s.scalar(select(JobRecord.stop_reason).where(JobRecord.id == job_id))


def _save(ws: Workspace, job_id: str, attempt: int, job: JobContext, data: dict[str, Any]) -> None:
    store.save_data(ws, job_id, attempt, data)
    job.data.update(data)
