"""The scheduler loop: read the store, feed the state machine, write back, execute instructions.

Every pass rebuilds the machine from the database, so starting up after a crash is an ordinary pass:
workers that still heartbeat are simply running (re-attached), silent ones are requeued or failed,
and an attempt that was marked starting but never launched times out and is requeued. Only the
holder of the leader lease acts; and every write is a compare-and-set, so even two schedulers that
both believe they lead never start the same attempt twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable

from imts.core.settings import Settings
from imts.jobs import storage, store
from imts.jobs.executors import EXECUTORS, Executor
from imts.jobs.machine import (
    HOLDING,
    Kill,
    Machine,
    MachineConfig,
    Record,
    Remove,
    Start,
    State,
    Stop,
    Tick,
    UserRequest,
    WorkerExited,
    WorkerRunning,
)
from imts.jobs.policy import PolicyConfig
from imts.jobs.pool import PoolSpec, load_pool
from imts.store.models import JobRecord
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)
# A killed worker's lock on its run can outlive the Kill by a moment: look again this often.
ABANDONED_SWEEP_S = 15.0

# Work other packages do at the end of every pass the leader makes, registered like job kinds (the
# closed loop moves its loops on: ``flywheel/driver.py``). One scheduler leads at a time, so a hook never
# runs twice at once; a failing hook is logged and never stops scheduling.
PASS_HOOKS: dict[str, Callable[[Workspace], None]] = {}


def for_pool(settings: Settings, pool: PoolSpec) -> Executor:
    """The executor the pool file names (``executor: local | ray``)."""
    if pool.executor == "ray":
        from imts.jobs.ray_executor import RayExecutor

        return RayExecutor(settings, pool.ray_address or "")
    return EXECUTORS["local"](settings)


class Scheduler:
    """One scheduler process (or thread): ``tick()`` is one pass, ``run()`` loops."""

    def __init__(
        self,
        ws: Workspace,
        executor: Executor | None = None,
        pool: PoolSpec | None = None,
        policy: PolicyConfig | None = None,
        holder: str | None = None,
    ) -> None:
        st = ws.settings
        self.ws = ws
        self.pool = pool or load_pool(st.pool_file)
        self.executor = executor or for_pool(st, self.pool)
        policy = policy or PolicyConfig(preempt_grace_s=st.preempt_grace_s)
        self.cfg = MachineConfig(st.heartbeat_timeout_s, st.start_timeout_s, policy)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.lease_ttl = max(1.0, 10 * st.scheduler_interval_s)  # a dead leader is replaced this fast
        self.leading: bool | None = None  # None until the first pass
        self.swept = 0.0  # when runs abandoned by lost workers were last looked for
        self.stopping = threading.Event()  # set by stop(): leave after the current pass
        # Stops the executor could not deliver (a Ray bridge that did not answer in time): sent again
        # every pass while their attempt is still stopping. Never a second SIGTERM to a worker that got
        # one (a kind that cannot checkpoint stops inside the handler); only one that never got it.
        self.undelivered: dict[str, Stop] = {}

    def _lead(self, leading: bool) -> None:
        """Say when this scheduler becomes the leader or a standby (once per change)."""
        if leading != self.leading:
            if leading:
                log.info("scheduler %s leads: it places and watches the jobs", self.holder)
            else:
                other = store.lease_holder(self.ws) or "another scheduler"
                log.info(
                    "scheduler %s is standby: %s holds the lease; taking over if it stops", self.holder, other
                )
        self.leading = leading

    def tick(self) -> bool:
        """One pass; False when another scheduler holds the lease (nothing was done)."""
        if not store.acquire_lease(self.ws, self.holder, self.lease_ttl):
            self._lead(False)
            return False
        self._lead(True)
        now = time.time()
        snap = store.snapshot(self.ws, now, self.pool.period_hours * 3600)
        stored: dict[str, int] = {}
        if self.pool.has_storage_quota and any(
            store.writes(r.kind) and r.state == "queued" for r in snap.rows
        ):
            stored = {name: p.total for name, p in storage.usage(self.ws).items()}
        m = Machine(self.pool, self.cfg, snap.usage, stored)
        rows = {r.id: r for r in snap.rows}
        for r in snap.rows:
            m.load(store.to_job(r, snap.projects.get(r.project_id, "")))
        out = []
        for r in snap.rows:
            out += [i for ev in _events(r) for i in m.handle(ev)]
        out += m.handle(Tick(now))
        ok: dict[str, bool] = {}
        for job_id in m.changed:
            job, row = m.jobs[job_id], rows[job_id]
            if job.state == State.DELETED:
                ok[job_id] = store.remove(self.ws, job_id, row.version)
                if ok[job_id]:
                    shutil.rmtree(self.ws.settings.artifacts_dir / "jobs" / job_id, ignore_errors=True)
            else:
                ok[job_id] = store.persist(self.ws, job, row.version, row.action is not None, now)
        store.record(
            self.ws,
            [
                (i.job_id, i.kind, i.message)
                for i in out
                if isinstance(i, Record)
                and ok.get(i.job_id, False)
                and m.jobs[i.job_id].state != State.DELETED
            ],
            now,
        )
        for i in out:
            if isinstance(i, Record) and ok.get(i.job_id, False):
                log.info("job %s: %s", i.job_id, i.message)  # every decision, in the daemon's log
        killed = False
        for i in out:
            if isinstance(i, Record | Remove) or not ok.get(i.job_id, False):
                continue  # a lost compare-and-set: the next pass re-reads and decides again
            self._execute(i, rows[i.job_id])
            killed = killed or isinstance(i, Kill)
        for job_id, stop in list(self.undelivered.items()):
            job = m.jobs.get(job_id)
            if job is None or job.state != State.PREEMPTING or job.attempt != stop.attempt:
                del self.undelivered[job_id]  # it ended (or was killed) meanwhile: nothing to deliver
            elif not any(isinstance(i, Stop) and i.job_id == job_id for i in out):
                self._execute(stop, rows[job_id])
        if killed or now - self.swept > ABANDONED_SWEEP_S:
            self._sweep_runs(now)
        for name, hook in PASS_HOOKS.items():
            try:
                hook(self.ws)
            except Exception as exc:
                log.warning("%s failed in this pass: %s", name, exc)
        return True

    def _sweep_runs(self, now: float) -> None:
        """Runs whose worker is gone (killed, lost, requeued) are marked ``interrupted``, not left
        ``running``: a requeued attempt starts a run of its own or resumes the same one."""
        from imts.store.runs import sweep_abandoned

        self.swept = now
        try:
            for run_id in sweep_abandoned(self.ws):
                log.info("run %s: its worker is gone; marked interrupted", run_id)
        except Exception as exc:  # bookkeeping only: never stop scheduling for it
            log.warning("looking for abandoned runs failed: %s", exc)

    def once(self) -> bool:
        """One pass, then give the lease back (for a CLI command acting without a daemon)."""
        try:
            return self.tick()
        finally:
            store.release_lease(self.ws, self.holder)

    def _execute(self, i: Start | Stop | Kill, row: JobRecord) -> None:
        try:
            if isinstance(i, Start):
                self.executor.start(store.worker_job(row), i.attempt, i.slots)
            elif isinstance(i, Stop):
                self.undelivered[i.job_id] = i
                self.executor.stop(store.worker_job(row), i.attempt)
                del self.undelivered[i.job_id]
            elif isinstance(i, Kill):
                self.executor.kill(store.worker_job(row), i.attempt)
        except Exception as exc:  # the machine recovers: an attempt that never starts times out
            log.warning("executor %s failed for %s: %s", type(i).__name__, i.job_id, exc)
            store.record(self.ws, [(i.job_id, "executor", f"{type(i).__name__} failed: {exc}")])

    def run(self, until: Callable[[], bool] | None = None, interval: float | None = None) -> None:
        """Pass after pass until ``until()`` is true or ``stop()`` is called (forever by default);
        releases the lease at the end."""
        interval = interval or self.ws.settings.scheduler_interval_s
        try:
            while not self.stopping.is_set() and (until is None or not until()):
                t0 = time.monotonic()
                try:
                    self.tick()
                except Exception as exc:  # e.g. the database restarting: keep going
                    log.warning("scheduler pass failed: %s", exc)
                self.stopping.wait(max(0.0, interval - (time.monotonic() - t0)))
        finally:
            store.release_lease(self.ws, self.holder)

    def stop(self) -> None:
        """Stop after the current pass. Safe from a signal handler: an exception raised there could land
        inside a database call and leave a connection holding row locks that giving the lease back would
        then wait on forever."""
        self.stopping.set()


def _events(r: JobRecord) -> list[UserRequest | WorkerRunning | WorkerExited]:
    """What changed in a row since the scheduler last wrote it."""
    evs: list[UserRequest | WorkerRunning | WorkerExited] = []
    current = r.report_attempt == r.attempt and r.attempt > 0
    if current and r.state == State.STARTING.value and r.report == "running":
        evs.append(WorkerRunning(r.id, r.attempt, r.heartbeat_ts or time.time()))
    if current and State(r.state) in HOLDING and r.report in store.WORKER_EXITS:
        evs.append(WorkerExited(r.id, r.attempt, r.report, r.error))
    if r.action:
        evs.append(UserRequest(r.id, r.action))
    return evs
