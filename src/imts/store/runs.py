"""The runs store: training and evaluation runs, their metrics by step and their events (MLflow-like).

Every function is scoped to ``ctx.project_id``: a run of another project is "not found", for reading
and for writing alike. Callers get pydantic read models (``RunView``, ``RunEventView``,
``RunComparison``), never ORM rows; the API uses them as response models.

``begin`` / ``run_lifecycle`` give training and evaluation one place for create-or-resume -> running ->
succeeded | failed | preempted | a custom status, with one sink that stores metrics and events here and
mirrors them to the exporters (TensorBoard, MLflow).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import EllipsisType
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from imts.core import environment
from imts.core.errors import ConflictError, Interrupted, NotFoundError
from imts.core.ids import new_id
from imts.store.context import Context
from imts.store.db import raw_rows
from imts.store.models import Metric, Run, RunEvent
from imts.store.tracking import TeeSink, exporters, flatten
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)

StepMetrics = Iterable[tuple[int, Mapping[str, float]]]


class RunView(BaseModel):
    """One training or evaluation run as callers see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    kind: str
    status: str
    spec: dict[str, Any]
    base_model_id: str | None = None
    model_version_id: str | None = None
    dataset_version_id: str | None = None
    split: str | None = None
    output_dir: str | None = None
    summary: dict[str, Any]
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunEventView(BaseModel):
    """Something that happened in a run (checkpoint saved, rollback, early stop ...)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: str
    step: int | None
    kind: str
    message: str
    data: dict[str, Any]
    ts: datetime


class RunComparison(BaseModel):
    """Runs side by side: their (flattened) specs and their numeric summary metrics.

    Attributes:
        runs: the runs, in the order asked.
        params: spec key (``lora.r``) -> its value in each run (None where a run lacks it).
        differing: the spec keys whose values are not all equal, in ``params`` order.
        metrics: numeric summary key (``final_loss``, ``metrics.rouge_l``) -> value per run.
    """

    runs: list[RunView]
    params: dict[str, list[Any]]
    differing: list[str]
    metrics: dict[str, list[float | None]]
    environment: dict[str, list[Any]] = {}
    environment_differing: list[str] = []


class RunRecord(BaseModel):
    """A run with what it was made with: code version, package versions, hardware, seeds."""

    run: RunView
    environment: dict[str, Any]


def create(
    ctx: Context,
    kind: str,
    spec: Mapping[str, Any],
    *,
    run_id: str | None = None,
    base_model_id: str | None = None,
    model_version_id: str | None = None,
    dataset_version_id: str | None = None,
    split: str | None = None,
    output_dir: str | None = None,
    environment: Mapping[str, Any] | None = None,
) -> RunView:
    """Record a new run (status ``created``) in the context's project.

    Args:
        kind: ``train`` or ``eval``.
        spec: the run's typed spec as JSON.
        run_id: the id to use (a job passes its own); a new one by default.
        environment: what it runs with (``core.environment.capture``).

    Raises:
        ConflictError: ``run_id`` is taken.
    """
    run_id = run_id or new_id("run")
    with ctx.session() as s:
        if s.get(Run, run_id) is not None:
            raise ConflictError(f"run id '{run_id}' is taken")
        row = Run(
            id=run_id,
            project_id=ctx.project_id,
            kind=kind,
            status="created",
            spec=dict(spec),
            base_model_id=base_model_id,
            model_version_id=model_version_id,
            dataset_version_id=dataset_version_id,
            split=split,
            output_dir=output_dir,
            summary={},
            environment=dict(environment or {}),
            created_at=datetime.now(UTC),
        )
        s.add(row)
        s.flush()
        return RunView.model_validate(row)


def start(ctx: Context, run_id: str) -> RunView:
    """Mark a run running (again: a resumed run forgets its previous error and end time)."""
    _drop_rollup(ctx, run_id)
    with ctx.session() as s:
        row = _owned(s, ctx, run_id)
        row.status, row.error, row.finished_at = "running", None, None
        row.started_at = row.started_at or datetime.now(UTC)
        s.flush()
        return RunView.model_validate(row)


def finish(
    ctx: Context,
    run_id: str,
    status: str,
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
    *,
    model_version_id: str | None = None,
) -> RunView:
    """End a run with ``status``; ``summary`` keys are added to the run's summary.

    Args:
        status: ``succeeded``, ``failed``, ``preempted``, ``pruned`` ...
        error: what went wrong, for a run that did not succeed.
        model_version_id: the model version a training run produced.
    """
    with ctx.session() as s:
        row = _owned(s, ctx, run_id)
        row.status, row.error, row.finished_at = status, error, datetime.now(UTC)
        if summary is not None:
            row.summary = {**row.summary, **summary}
        if model_version_id is not None:
            row.model_version_id = model_version_id
        s.flush()
        view = RunView.model_validate(row)
    curves(ctx, run_id, None, ROLLUP_BUCKETS)  # the finished run's rollup, for every later curve page
    return view


def update_summary(ctx: Context, run_id: str, values: Mapping[str, Any]) -> RunView:
    """Add ``values`` to a run's summary (e.g. where its report was written)."""
    with ctx.session() as s:
        row = _owned(s, ctx, run_id)
        row.summary = {**row.summary, **values}
        s.flush()
        return RunView.model_validate(row)


def set_status(ctx: Context, run_id: str, status: str) -> None:
    """Overwrite a run's status only (a search driver marks a trial whose job it stopped)."""
    with ctx.session() as s:
        _owned(s, ctx, run_id).status = status


def log_batch(ctx: Context, run_id: str, step_metrics: StepMetrics) -> int:
    """Store many metrics at once: ``[(step, {key: value, ...}), ...]``; returns how many.

    A (key, step) the run already has is replaced, not repeated: a resumed run redoes the steps after
    its last checkpoint, and a watchdog rollback redoes the steps after the good one.
    """
    latest: dict[tuple[str, int], float] = {}
    for step, values in step_metrics:
        for k, v in values.items():
            latest[(k, int(step))] = float(v)
    if latest:
        _drop_rollup(ctx, run_id)
        with ctx.session() as s:
            _owned(s, ctx, run_id)
            pairs = list(latest)
            for at in range(0, len(pairs), 1000):  # PostgreSQL refuses one IN of 10,000 pairs
                s.execute(
                    delete(Metric).where(
                        Metric.run_id == run_id, tuple_(Metric.key, Metric.step).in_(pairs[at : at + 1000])
                    )
                )
            s.add_all(Metric(run_id=run_id, key=k, step=st, value=v) for (k, st), v in latest.items())
    return len(latest)


def log_event(
    ctx: Context,
    run_id: str,
    kind: str,
    message: str,
    step: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Store one event of a run (``checkpoint``, ``rollback``, ``early_stop`` ...)."""
    with ctx.session() as s:
        _owned(s, ctx, run_id)
        s.add(RunEvent(run_id=run_id, step=step, kind=kind, message=message, data=dict(data or {})))


def get(ctx: Context, run_id: str) -> RunView:
    """One run of the context's project.

    Raises:
        NotFoundError: no such run in this project.
    """
    with ctx.session() as s:
        return RunView.model_validate(_owned(s, ctx, run_id))


def record(ctx: Context, run_id: str) -> RunRecord:
    """A run with its environment record (code version, packages, hardware, seeds)."""
    with ctx.session() as s:
        row = _owned(s, ctx, run_id)
        return RunRecord(run=RunView.model_validate(row), environment=dict(row.environment or {}))


def exists(ctx: Context, run_id: str) -> bool:
    """Whether the context's project has a run ``run_id``."""
    with ctx.session() as s:
        return _find(s, ctx, run_id) is not None


def history(
    ctx: Context, run_id: str, keys: Iterable[str] | None = None, after_step: int | None = None,
    until_step: int | None = None,
) -> dict[str, list[tuple[int, float]]]:  # fmt: skip
    """A run's metrics by key, each a list of (step, value) in step order.

    Args:
        keys: only these keys (all by default).
        after_step: only steps after this one (a pruning driver reads what is new).
        until_step: only steps up to this one (a zoomed curve reads its range).
    """
    m = Metric.__table__.c  # Core columns: a curve of 100,000 points reads without ORM row handling
    with ctx.session() as s:
        _owned(s, ctx, run_id)
        q = select(m.key, m.step, m.value).where(m.run_id == run_id)
        if keys is not None:
            q = q.where(m.key.in_(list(keys)))
        if after_step is not None:
            q = q.where(m.step > after_step)
        if until_step is not None:
            q = q.where(m.step <= until_step)
        rows = raw_rows(s, q.order_by(m.key, m.step, m.id))  # the (run, key, step) index's order
    out: dict[str, list[tuple[int, float]]] = {}
    for key, step, value in rows:
        out.setdefault(key, []).append((step, value))
    return out


# The console's curve resolution: a finished run's whole curves at it are computed once and kept beside
# the run (``runs/<id>/curves.json``), so a page of 20 long runs reads 20 small files, not 2M rows.
ROLLUP_BUCKETS = 1000
LIVE = ("created", "running")


def curves(
    ctx: Context, run_id: str, keys: Iterable[str] | None, buckets: int,
    after_step: int | None = None, until_step: int | None = None,
) -> dict[str, list[tuple[int, float]]]:  # fmt: skip
    """``history`` downsampled to ``buckets`` per curve (``core.downsample``: every bucket's minimum,
    maximum and last point). A run that is no longer running keeps its whole curves at
    ``ROLLUP_BUCKETS`` in a rollup written when it finished (or at the first read); a resumed run, or
    metrics logged again, drop it."""
    from imts.core.downsample import downsample

    if buckets != ROLLUP_BUCKETS or after_step is not None or until_step is not None:
        hist = history(ctx, run_id, keys, after_step, until_step)
        return {k: downsample(points, buckets) for k, points in hist.items()}
    run = get(ctx, run_id)  # this project's run, or NotFoundError
    path = ctx.artifacts.path(f"runs/{run_id}/curves.json")
    rollup = _read_rollup(path) if run.status not in LIVE else None
    if rollup is None:
        rollup = {k: downsample(points, buckets) for k, points in history(ctx, run_id).items()}
        if run.status not in LIVE and rollup:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".curves.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"buckets": buckets, "curves": rollup}), encoding="utf-8")
            os.replace(tmp, path)  # atomic: a reader sees the whole rollup or none
    wanted = None if keys is None else set(keys)
    return {k: v for k, v in rollup.items() if wanted is None or k in wanted}


def _read_rollup(path: Path) -> dict[str, list[tuple[int, float]]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("buckets") != ROLLUP_BUCKETS:
        return None
    return {k: [(int(s), float(v)) for s, v in points] for k, points in data["curves"].items()}


def _drop_rollup(ctx: Context, run_id: str) -> None:
    ctx.artifacts.path(f"runs/{run_id}/curves.json").unlink(missing_ok=True)


def events(ctx: Context, run_id: str) -> list[RunEventView]:
    """A run's events, oldest first."""
    with ctx.session() as s:
        _owned(s, ctx, run_id)
        rows = s.scalars(select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id))
        return [RunEventView.model_validate(r) for r in rows]


def search(
    ctx: Context,
    kind: str | None = None,
    status: str | None = None,
    *,
    dataset_version_id: str | EllipsisType | None = ...,
    model_version_id: str | EllipsisType | None = ...,
    base_model_id: str | EllipsisType | None = ...,
    limit: int | None = None,
) -> list[RunView]:
    """The project's runs, newest first.

    Args:
        kind, status: only runs of this kind / in this status (None: any).
        dataset_version_id, model_version_id, base_model_id: only runs with this value; ``None``
            asks for runs without one (an evaluation of a base model has no model version); ``...``
            (the default) does not filter.
        limit: at most this many runs.
    """
    q = select(Run).where(Run.project_id == ctx.project_id)
    if kind is not None:
        q = q.where(Run.kind == kind)
    if status is not None:
        q = q.where(Run.status == status)
    for column, value in (
        (Run.dataset_version_id, dataset_version_id),
        (Run.model_version_id, model_version_id),
        (Run.base_model_id, base_model_id),
    ):
        if value is not ...:
            q = q.where(column.is_(None) if value is None else column == value)
    q = q.order_by(Run.created_at.desc(), Run.id.desc())
    if limit is not None:
        q = q.limit(limit)
    with ctx.session() as s:
        return [RunView.model_validate(r) for r in s.scalars(q)]


def compare(ctx: Context, run_ids: list[str]) -> RunComparison:
    """Runs side by side: which spec keys differ, and their summary metrics.

    Raises:
        NotFoundError: one of the runs is not in this project.
    """
    views = [get(ctx, r) for r in run_ids]
    specs = [flatten(v.spec) for v in views]
    keys = list(dict.fromkeys(k for spec in specs for k in spec))
    params = {k: [spec.get(k) for spec in specs] for k in keys}
    differing = [k for k, values in params.items() if any(v != values[0] for v in values[1:])]
    numeric = [summary_metrics(v.summary) for v in views]
    names = list(dict.fromkeys(k for m in numeric for k in m))
    metrics = {k: [m.get(k) for m in numeric] for k in names}
    envs = [flatten(record(ctx, r).environment) for r in run_ids]
    env_keys = list(dict.fromkeys(k for env in envs for k in env))
    environment = {k: [env.get(k) for env in envs] for k in env_keys}
    env_differing = [k for k, vs in environment.items() if any(v != vs[0] for v in vs[1:])]
    return RunComparison(
        runs=views, params=params, differing=differing, metrics=metrics,
        environment=environment, environment_differing=env_differing,
    )  # fmt: skip


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a run summary, nested keys joined with dots (``metrics.rouge_l``)."""
    return {
        k: float(v)
        for k, v in flatten(dict(summary)).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class StoreSink:
    """A run's sink into this store: metrics are written in small batches, events at once."""

    def __init__(self, ctx: Context, run_id: str, flush_every: int = 10) -> None:
        self.ctx, self.run_id, self.flush_every = ctx, run_id, flush_every
        self._pending: list[tuple[int, dict[str, float]]] = []
        self._count = 0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self._pending.append((step, dict(values)))
        self._count += len(values)
        if self._count >= self.flush_every * 5 or "val_loss" in values:
            self.flush()  # val_loss at once: an HPO driver prunes trial jobs on the stored values

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.flush()
        log_event(self.ctx, self.run_id, kind, message, step, data)

    def flush(self) -> None:
        if self._pending:
            log_batch(self.ctx, self.run_id, self._pending)
            self._pending, self._count = [], 0


OWNER_FILE = ".owner"  # in the run's folder: locked (flock) by the process running the run


class Owner:
    """The run folder's ``.owner`` file, locked while this process runs the run.

    The lock dies with the process (even under SIGKILL), so a ``running`` run whose lock can be taken
    was abandoned: ``sweep_abandoned`` marks it ``interrupted``. The file names the host and pid.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / OWNER_FILE
        self.fd: int | None = None

    def acquire(self, run_id: str) -> None:
        """Take the lock, or refuse: another live process runs this run."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = os.read(fd, 200).decode(errors="replace").strip()
            os.close(fd)
            raise ConflictError(f"run {run_id} is running now ({held or 'another process'})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None


def abandoned_reason(output_dir: str | None) -> str | None:
    """Why a ``running`` run is abandoned (its process on this host is gone), or None when it may
    still run: its lock is held, or it belongs to another host (whose locks this one cannot see)."""
    if not output_dir:
        return None
    path = Path(output_dir) / OWNER_FILE
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None  # a run from before owner files: nothing to judge by
    try:
        owner = os.read(fd, 200).decode(errors="replace").strip()
        if not owner.startswith(f"host {socket.gethostname()} "):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # its process still runs it
        return f"its process ({owner}) ended without finishing it (killed or lost)"
    finally:
        os.close(fd)


def sweep_abandoned(ws: Workspace) -> list[str]:
    """Mark ``interrupted`` every run left ``running`` by a process of this host that is gone (all
    projects: crash recovery, and the scheduler when it requeues a lost attempt). Returns their ids.

    A training run keeps its checkpoints: ``imts train --resume RUN`` continues it.
    """
    with ws.session() as s:
        found = s.execute(select(Run.id, Run.kind, Run.output_dir).where(Run.status == "running")).all()
    marked = []
    for run_id, kind, output_dir in found:
        why = abandoned_reason(output_dir)
        if why is None:
            continue
        hint = f"; resume it: imts train --resume {run_id}" if kind == "train" else ""
        with ws.session() as s:
            done = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(status="interrupted", error=why + hint, finished_at=datetime.now(UTC))
            )
            if done.rowcount:  # type: ignore[attr-defined]
                marked.append(run_id)
                s.add(RunEvent(run_id=run_id, kind="interrupted", message=why, data={}))
    for run_id in marked:
        log.info("run %s was left running by a process that is gone: marked interrupted", run_id)
    return marked


class RunHandle:
    """A started run: report through ``sink``; end with ``succeed`` or ``fail`` (once).

    Attributes:
        id: the run id.
        sink: stores metrics and events, then hands them to the exporters.
        summary, model_version_id: what ``run_lifecycle`` records when its block ends normally.
    """

    def __init__(self, ctx: Context, run_id: str, store: StoreSink, tee: TeeSink, owner: Owner) -> None:
        self.ctx, self.id, self.store, self.sink, self.owner = ctx, run_id, store, tee, owner
        self.summary: dict[str, Any] = {}
        self.model_version_id: str | None = None
        self.status: str | None = None

    def succeed(self, summary: Mapping[str, Any], model_version_id: str | None = None) -> RunView:
        """Record the run as succeeded with ``summary``; its numbers also go to the exporters."""
        self.store.flush()
        view = finish(self.ctx, self.id, "succeeded", summary, model_version_id=model_version_id)
        self.status = "succeeded"
        numbers = summary_metrics(summary)
        if numbers:
            self.sink.export(int(summary.get("steps") or 0), {f"summary/{k}": v for k, v in numbers.items()})
        self.sink.close("succeeded")
        self.owner.release()
        return view

    def fail(self, exc: BaseException) -> str:
        """Record the run as ended by ``exc``; returns the status: the ``Interrupted``'s status
        (``preempted``; ``cancelled`` when its job was cancelled), ``interrupted`` (Ctrl-C), the
        exception's ``run_status`` attribute (HPO's ``pruned``) or ``failed``."""
        if isinstance(exc, Interrupted):
            status = exc.status
        elif isinstance(exc, KeyboardInterrupt):
            status = "interrupted"
        else:
            status = str(getattr(exc, "run_status", "failed"))
        self.status = status
        try:
            self.store.flush()
        finally:
            self.sink.close(status)
            if exists(self.ctx, self.id):
                finish(self.ctx, self.id, status, error=f"{type(exc).__name__}: {exc}")
            self.owner.release()
        return status


def begin(
    ctx: Context,
    kind: str,
    spec: Mapping[str, Any],
    *,
    run_id: str | None = None,
    base_model_id: str | None = None,
    model_version_id: str | None = None,
    dataset_version_id: str | None = None,
    split: str | None = None,
) -> RunHandle:
    """Create the run, or resume it when ``run_id`` already exists in this project, and mark it running.

    Its folder is ``runs/<run id>`` under the artifact store (checkpoints, TensorBoard event files);
    the exporters configured in the settings receive its metrics, events and summary.
    """
    run_id = run_id or new_id("run")
    out_dir = ctx.artifacts.path(f"runs/{run_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    owner = Owner(out_dir)
    owner.acquire(run_id)  # before the run is marked running: a sweep never sees it unowned
    try:
        run = {
            "base_model_id": base_model_id,
            "model_version_id": model_version_id,
            "dataset_version_id": dataset_version_id,
            "split": split,
        }
        return _begin(ctx, kind, spec, run_id, out_dir, owner, **run)
    except BaseException:
        owner.release()
        raise


def _begin(
    ctx: Context,
    kind: str,
    spec: Mapping[str, Any],
    run_id: str,
    out_dir: Path,
    owner: Owner,
    **run: Any,
) -> RunHandle:
    if not exists(ctx, run_id):  # else resume: a recipe continues from the latest checkpoint in out_dir
        seed = spec.get("seed")
        create(
            ctx,
            kind,
            spec,
            run_id=run_id,
            output_dir=str(out_dir),
            environment=environment.capture(seed if isinstance(seed, int) else None),
            **run,
        )
    start(ctx, run_id)
    store = StoreSink(ctx, run_id)
    tee = TeeSink(store, exporters(ctx.settings, run_id, out_dir, dict(spec)))
    return RunHandle(ctx, run_id, store, tee, owner)


@contextmanager
def run_lifecycle(ctx: Context, kind: str, spec: Mapping[str, Any], **run: Any) -> Iterator[RunHandle]:
    """``begin`` a run; when the block ends, record it succeeded with ``handle.summary`` (unless the
    block called ``succeed`` itself), or failed / preempted / the exception's ``run_status``."""
    handle = begin(ctx, kind, spec, **run)
    try:
        yield handle
    except BaseException as exc:
        if handle.status is None:
            handle.fail(exc)
        raise
    if handle.status is None:
        handle.succeed(handle.summary, handle.model_version_id)


def _find(s: Session, ctx: Context, run_id: str) -> Run | None:
    row = s.get(Run, run_id)
    return row if row is not None and row.project_id == ctx.project_id else None


def _owned(s: Session, ctx: Context, run_id: str) -> Run:
    row = _find(s, ctx, run_id)
    if row is None:
        raise NotFoundError(f"no run '{run_id}'")
    return row
