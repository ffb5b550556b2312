"""The scheduler core: a pure state machine. Typed events in, instructions out.

All mutation goes through ``Machine.handle(event)``; the allowed moves are the ``TRANSITIONS`` table.
No clock, no processes, no database: the loop (``jobs.loop``) feeds events built from the store and
executes the returned instructions. Lifecycle::

    queued -> starting -> running -> succeeded | failed | cancelled
    running/starting -> preempting (checkpoint-and-stop) -> queued | paused | cancelled
    queued -> paused -> queued;  failed | cancelled -> queued (retry);  finished -> deleted
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from imts.jobs.policy import Candidate, PolicyConfig, Usage, plan
from imts.jobs.pool import Pool, PoolSpec, Request, Slot


class State(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    PREEMPTING = "preempting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


HOLDING = (State.STARTING, State.RUNNING, State.PREEMPTING)  # states whose job holds its slots
FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)


@dataclass
class Job:
    """The scheduler's view of one job (a projection of the store row)."""

    id: str
    tenant: str = "default"
    priority: int = 50
    workers: int = 1
    request: Request = field(default_factory=Request)
    submitted: float = 0.0
    preemptible: bool = True
    max_retries: int = 0
    state: State = State.QUEUED
    attempt: int = 0
    retries: int = 0
    stop_reason: str | None = None  # preempt | pause | cancel, while preempting
    slots: list[Slot] | None = None
    started: float | None = None  # when the current attempt was started
    heartbeat: float | None = None
    reason: str = ""  # why it waits / how it ended
    error: str | None = None
    project: str = ""  # project key, TENANT/PROJECT: the storage quota is per project
    writes: bool = False  # writes artifacts (train, split): held while the project is over its storage


# --- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    job: Job


@dataclass(frozen=True)
class WorkerRunning:
    job_id: str
    attempt: int
    now: float


@dataclass(frozen=True)
class Heartbeat:
    job_id: str
    attempt: int
    now: float


@dataclass(frozen=True)
class WorkerExited:
    job_id: str
    attempt: int
    outcome: str  # succeeded | failed | stopped
    error: str | None = None


@dataclass(frozen=True)
class UserRequest:
    job_id: str
    action: str  # pause | resume | cancel | retry | delete


@dataclass(frozen=True)
class Tick:
    """Time passed: detect lost workers, then run one scheduling pass."""

    now: float


Event = Submitted | WorkerRunning | Heartbeat | WorkerExited | UserRequest | Tick

# --- instructions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    job_id: str
    attempt: int
    slots: list[Slot]


@dataclass(frozen=True)
class Stop:
    """Ask the worker to checkpoint at its next step boundary and exit (SIGTERM)."""

    job_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class Kill:
    """Kill whatever is left of an attempt presumed lost (SIGKILL)."""

    job_id: str
    attempt: int


@dataclass(frozen=True)
class Remove:
    job_id: str


@dataclass(frozen=True)
class Record:
    """A line for the job's event history."""

    job_id: str
    kind: str
    message: str


Instruction = Start | Stop | Kill | Remove | Record

# --- the transition table --------------------------------------------------------------------------
# (state, trigger) -> next state. "retry_or_fail" and "after_stop" are resolved from the job.
TRANSITIONS: dict[tuple[State, str], str] = {
    (State.QUEUED, "start"): State.STARTING,
    (State.QUEUED, "pause"): State.PAUSED,
    (State.QUEUED, "cancel"): State.CANCELLED,
    (State.PAUSED, "resume"): State.QUEUED,
    (State.PAUSED, "cancel"): State.CANCELLED,
    (State.STARTING, "running"): State.RUNNING,
    (State.STARTING, "start_timeout"): State.QUEUED,
    **{(s, "succeeded"): State.SUCCEEDED for s in HOLDING},
    **{(s, "failed"): "retry_or_fail" for s in HOLDING},
    (State.STARTING, "lost"): "retry_or_fail",
    (State.RUNNING, "lost"): "retry_or_fail",
    (State.PREEMPTING, "lost"): "after_stop",
    **{(s, "stopped"): "after_stop" for s in HOLDING},
    **{
        (s, a): State.PREEMPTING
        for s in (State.STARTING, State.RUNNING)
        for a in ("preempt", "pause", "cancel")
    },
    (State.PREEMPTING, "cancel"): State.PREEMPTING,
    (State.PREEMPTING, "resume"): State.PREEMPTING,
    (State.FAILED, "retry"): State.QUEUED,
    (State.CANCELLED, "retry"): State.QUEUED,
    **{(s, "delete"): State.DELETED for s in FINISHED},
}
USER_ACTIONS = ("pause", "resume", "cancel", "retry", "delete")


def allowed(state: State | str, action: str) -> bool:
    """Whether ``action`` is a legal move from ``state`` (used to refuse requests up front)."""
    return (State(state), action) in TRANSITIONS


@dataclass(frozen=True)
class MachineConfig:
    heartbeat_timeout: float = 30.0
    start_timeout: float = 60.0
    policy: PolicyConfig = field(default_factory=PolicyConfig)


class Machine:
    """Jobs, the pool and the policy. Build it from the store with ``load``, then ``handle`` events."""

    def __init__(
        self,
        pool: PoolSpec,
        cfg: MachineConfig = MachineConfig(),
        usage: dict[str, Usage] | None = None,
        storage: dict[str, int] | None = None,
    ) -> None:
        """``usage``: CPU/GPU-hours per tenant this period; ``storage``: bytes stored per project."""
        self.spec, self.cfg, self.usage, self.storage = pool, cfg, usage or {}, storage or {}
        self.pool = Pool(pool)
        self.jobs: dict[str, Job] = {}
        self.changed: set[str] = set()

    def load(self, job: Job) -> None:
        """Add a job as it stands in the store (no transition): rebuilding after a restart."""
        self.jobs[job.id] = job
        if job.state in HOLDING and job.slots:
            self.pool.take(job.slots)

    def handle(self, event: Event) -> list[Instruction]:
        """The one entry point that changes anything."""
        out: list[Instruction] = []
        if isinstance(event, Submitted):
            self.jobs[event.job.id] = event.job
            event.job.state = State.QUEUED
            self.changed.add(event.job.id)
            out.append(Record(event.job.id, "submitted", "queued"))
        elif isinstance(event, Tick):
            self._liveness(event.now, out)
            self._schedule(event.now, out)
        elif isinstance(event, UserRequest):
            self._request(event, out)
        else:
            job = self.jobs.get(event.job_id)
            if job is None or event.attempt != job.attempt:
                return out  # a report from an attempt that is no longer current: ignore it
            if isinstance(event, Heartbeat):
                job.heartbeat = event.now
                self.changed.add(job.id)
            elif isinstance(event, WorkerRunning):
                job.heartbeat = event.now
                self._move(job, "running", out, "worker running")
            elif isinstance(event, WorkerExited):
                job.error = event.error
                self._move(job, event.outcome, out, event.error or event.outcome)
        return out

    # --- internals -------------------------------------------------------------------------------

    def _move(self, job: Job, trigger: str, out: list[Instruction], why: str) -> bool:
        target = TRANSITIONS.get((job.state, trigger))
        if target is None:
            out.append(Record(job.id, "ignored", f"'{trigger}' is not allowed while {job.state.value}"))
            return False
        if target == "retry_or_fail":
            if job.retries < job.max_retries:
                job.retries += 1
                target = State.QUEUED
                why = f"{why}; retry {job.retries} of {job.max_retries}"
            else:
                target = State.FAILED
        elif target == "after_stop":
            target = {"pause": State.PAUSED, "cancel": State.CANCELLED}.get(
                job.stop_reason or "", State.QUEUED
            )
        before, job.state = job.state, State(target)
        if before in HOLDING and job.state not in HOLDING:
            if job.slots:
                self.pool.give(job.slots)
            job.slots, job.stop_reason, job.heartbeat = None, None, None
        if job.state in FINISHED or job.state == State.PAUSED:
            job.reason = why
        self.changed.add(job.id)
        out.append(Record(job.id, job.state.value, f"{before.value} -> {job.state.value}: {why}"))
        return True

    def _request(self, ev: UserRequest, out: list[Instruction]) -> None:
        job = self.jobs.get(ev.job_id)
        if job is None:
            return
        before = job.state
        self.changed.add(job.id)  # the request is consumed even when refused
        if not self._move(job, ev.action, out, f"{ev.action} requested"):
            return
        if job.state == State.PREEMPTING and before in (State.STARTING, State.RUNNING, State.PREEMPTING):
            if ev.action == "resume":  # resume while pausing: the stop is now a plain requeue
                job.stop_reason = "preempt" if job.stop_reason == "pause" else job.stop_reason
                return
            job.stop_reason = ev.action
            if before == State.STARTING and job.heartbeat is None:
                # No worker has claimed the attempt: there is nothing to checkpoint, and a SIGTERM that
                # lands while the worker is still importing would only be noticed at the start timeout.
                out.append(Kill(job.id, job.attempt))
                self._move(job, "stopped", out, f"{ev.action} requested before its worker started")
                return
            out.append(Stop(job.id, job.attempt, job.stop_reason))
        elif job.state == State.QUEUED and ev.action == "retry":
            job.retries, job.error, job.reason = 0, None, ""
        elif job.state == State.DELETED:
            out.append(Remove(job.id))

    def _liveness(self, now: float, out: list[Instruction]) -> None:
        for job in list(self.jobs.values()):
            if job.state not in HOLDING:
                continue
            if job.heartbeat is None:  # no worker has claimed the attempt yet
                waited = now - (job.started if job.started is not None else now)
                if waited > self.cfg.start_timeout:
                    out.append(Kill(job.id, job.attempt))
                    trigger = "start_timeout" if job.state == State.STARTING else "lost"
                    self._move(job, trigger, out, f"no worker within {self.cfg.start_timeout:g}s")
            elif now - job.heartbeat > self.cfg.heartbeat_timeout:
                out.append(Kill(job.id, job.attempt))
                self._move(job, "lost", out, f"no heartbeat for {now - job.heartbeat:.0f}s")

    def _schedule(self, now: float, out: list[Instruction]) -> None:
        queued, running = [], []
        for j in self.jobs.values():
            c = Candidate(
                j.id,
                j.tenant,
                j.priority,
                j.workers,
                j.request,
                j.submitted,
                j.preemptible,
                j.started,
                j.slots,
                j.state == State.PREEMPTING,
                resumed=j.attempt > 1,
                project=j.project,
                writes=j.writes,
            )
            if j.state == State.QUEUED:
                queued.append(c)
            elif j.state in HOLDING:
                running.append(c)
        if not queued:
            return
        p = plan(self.spec, self.pool, queued, running, now, self.cfg.policy, self.usage, self.storage)
        for c, slots in p.starts:
            job = self.jobs[c.id]
            job.attempt += 1
            job.slots, job.started, job.heartbeat, job.reason = slots, now, None, ""
            self._move(job, "start", out, f"placed on {', '.join(sorted({s.node for s in slots}))}")
            out.append(Start(job.id, job.attempt, slots))
        for victim, winner in p.preempt:
            job = self.jobs[victim.id]
            if self._move(job, "preempt", out, f"preempted for {winner}"):
                job.stop_reason = "preempt"
                out.append(Stop(job.id, job.attempt, "preempt"))
        for job_id, reason in p.reasons.items():
            job = self.jobs[job_id]
            if job.reason != reason:
                job.reason = reason
                self.changed.add(job_id)
