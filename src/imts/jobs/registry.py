"""Job kinds by name: each one record (spec, runner, result, check, gang size, what it writes, whether it
stops and resumes), registered by the package that owns the work (``train/jobs.py``, ``evals/jobs.py``,
``data/jobs.py``; the ``sleep`` drill in ``jobs/sleep.py``). Adding a kind touches one file.

A runner gets a ``JobContext`` (the job's context, a ``should_stop`` flag set by SIGTERM, progress that
the heartbeat reports, and ``data`` that survives requeues) and returns its typed result. It raises
``Interrupted`` when it stopped on request after saving what a later attempt needs to resume.
The jobs package imports no domain package: surfaces load the kinds (``services.kinds.load``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from imts.core.errors import InputError
from imts.core.progress import Progress
from imts.store.context import Context


@dataclass
class JobContext:
    """What a runner sees of its job (in a worker, or in this process for an inline run)."""

    ctx: Context  # the job's tenant and project, acting as the job
    job_id: str
    attempt: int
    data: dict[str, Any]
    save_data: Callable[[dict[str, Any]], None]
    should_stop: Callable[[], bool]
    progress: Progress
    submitted_ts: float = 0.0  # when the job was queued (a runner may look for what it made since)
    # Why it is asked to stop (preempt | pause | cancel), once should_stop() is true; None inline.
    stop_reason: Callable[[], str | None] = field(default=lambda: None)

    def stopped_status(self) -> str:
        """The status a run stopped on request ends in: ``cancelled`` when its job was cancelled (it
        will not come back), else ``preempted`` (a later attempt resumes it)."""
        return "cancelled" if self.stop_reason() == "cancel" else "preempted"


def _no_check(ctx: Context, spec: Any) -> None:
    return None


def _as_asked(spec: Any, asked: int) -> int:
    return asked


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    Attributes:
        name: the kind's name (``imts jobs submit NAME``; stored with the job).
        spec: the pydantic model of its spec (stored with the job as JSON).
        run: ``(JobContext, spec) -> result``, in the worker (or inline).
        result: the pydantic model the runner returns (stored as the job's ``data["result"]``).
        check: ``(ctx, spec)``: refuse at submit what would fail at once in the worker.
        workers: ``(spec, asked) -> int``: the gang size (a data-parallel train job's is its nproc).
        multi_worker: may run as a gang of several workers.
        self_launching: the runner starts its gang's ranks itself (torch.distributed), not the worker.
        writes: writes artifacts, so a project over its storage quota holds it back.
        stoppable: checks ``should_stop`` and resumes from saved data; others are interrupted at once.
        run_rank: ``(JobContext, spec) -> None``: rank 1..N-1 of a self-launching kind whose ranks the
            executor places apart (Ray: one actor per rank, on any node); it joins rank 0's group.
    """

    name: str
    spec: type[BaseModel]
    run: Callable[[JobContext, Any], BaseModel]
    result: type[BaseModel]
    check: Callable[[Context, Any], None] = _no_check
    workers: Callable[[Any, int], int] = _as_asked
    multi_worker: bool = False
    self_launching: bool = False
    writes: bool = False
    stoppable: bool = False
    run_rank: Callable[[JobContext, Any], None] | None = None

    def parse(self, spec: dict[str, Any] | BaseModel) -> BaseModel:
        """The typed spec from JSON (or another model of the same fields); errors name the field."""
        try:
            return self.spec.model_validate(
                spec.model_dump(mode="json") if isinstance(spec, BaseModel) else spec
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(first["msg"], field=".".join(str(p) for p in first["loc"])) from exc


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Add (or replace, on a module reload) the kind named ``kind.name``."""
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> JobKind:
    """The kind named ``name``.

    Raises:
        InputError: no such kind is registered.
    """
    kind = _KINDS.get(name)
    if kind is None:
        raise InputError(f"unknown job kind '{name}'; one of {', '.join(names())}", field="kind")
    return kind


def find(name: str) -> JobKind | None:
    """The kind named ``name``, or None (the scheduler meets rows of kinds it may not know)."""
    return _KINDS.get(name)


def names() -> list[str]:
    return list(_KINDS)
