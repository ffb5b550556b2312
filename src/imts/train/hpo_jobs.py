"""Hyper-parameter search whose trials are jobs: scheduled, fair-shared, preemptible, crash-proof.

The driver is not a job. It runs in the process that asks for the search (``imts hpo``), holds no pool
slot, and only talks to two stores: Optuna's study (an RDB file next to the workspace database,
``Settings.hpo_db_url``) and the jobs table. Per trial it asks Optuna for parameters, submits a ``train``
job, reads the trial run's stored ``val_loss`` per step as intermediate values, and when the median
pruner says so cancels the job (it checkpoints and stops; its run is marked ``pruned``). A trial job
that is preempted resumes from its checkpoint like any training job.

Why not a driver job: a driver holding a slot while its trials wait for slots deadlocks a one-slot pool
(and wastes a slot on any pool). Why not a zero-resource job kind: it would still need a process to
poll, and a crashed driver job would be retried by the scheduler with nothing gained over re-running
``imts hpo --resume``. Everything the driver knows is in the two stores, so killing it (Ctrl-C, a crash)
loses nothing: trials keep running as jobs, and ``resume`` re-attaches the unfinished ones.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import yaml

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.jobs import service, store
from imts.jobs.pool import Request
from imts.store import runs
from imts.store.context import Context
from imts.train.hpo import HpoResult, ParamSpace, SamplerName, make_sampler, suggest
from imts.train.jobs import TrainJob
from imts.train.spec import RunSpec

FINISHED = ("succeeded", "failed", "cancelled")


def storage(ctx: Context) -> Any:
    import optuna

    return optuna.storages.RDBStorage(ctx.settings.hpo_db_url)


def create(
    ctx: Context,
    base_spec: RunSpec,
    space: dict[str, ParamSpace],
    sampler: SamplerName = "tpe",
    trials: int = 10,
    seed: int = 0,
    parallel: int = 1,
    priority: str = "normal",
    cpus: int = 1,
) -> str:
    """Create a study (no trial runs yet); everything ``drive`` needs is saved with it."""
    import optuna

    if base_spec.val_split is None:
        raise InputError("hyper-parameter search minimises validation loss: set val_split")
    for key, p in space.items():  # fail before any job if a key is not a run-spec field
        RunSpec.from_sources(overrides=[_override(key, _probe(p))], **base_spec.model_dump())
    make_sampler(sampler, space, seed)
    study_id = new_id("hpo")
    study = optuna.create_study(study_name=study_id, storage=storage(ctx), direction="minimize")
    config = {
        "base_spec": base_spec.model_dump(mode="json"),
        "space": {k: p.model_dump(mode="json") for k, p in space.items()},
        "sampler": sampler,
        "trials": trials,
        "seed": seed,
        "parallel": parallel,
        "priority": priority,
        "cpus": cpus,
        "project": ctx.project,
    }
    for key, value in config.items():
        study.set_user_attr(key, value)
    return study_id


def drive(
    ctx: Context, study_id: str, progress: Progress | None = None, poll_s: float = 0.3, stop: Any = None
) -> HpoResult:
    """Run (or resume) the study until it has its number of finished trials; writes the report.

    ``stop()`` (tests) is checked every poll; when true the driver leaves as Ctrl-C would: trials keep
    running as jobs, and a later ``drive`` of the same study re-attaches them.
    """
    import optuna
    from optuna.trial import Trial, TrialState

    from imts.jobs.loop import Scheduler
    from imts.train.hpo_report import write_report

    progress = progress or NullProgress()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        summary = optuna.load_study(study_name=study_id, storage=storage(ctx))
    except KeyError:
        raise NotFoundError(f"no hyper-parameter study '{study_id}'") from None
    cfg = summary.user_attrs
    space = {k: ParamSpace.model_validate(v) for k, v in cfg["space"].items()}
    base = RunSpec.model_validate(cfg["base_spec"])
    study = optuna.load_study(
        study_name=study_id,
        storage=storage(ctx),
        sampler=make_sampler(cfg["sampler"], space, cfg["seed"], ask_tell=True),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    active: dict[int, _Trial] = {}
    for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # a resumed driver
        if "job_id" in ft.user_attrs:  # Optuna has no public way from a frozen trial to a live one
            active[ft.number] = _Trial(Trial(study, ft._trial_id), ft.user_attrs["job_id"], ft)
        else:  # the driver died between asking and submitting: nothing ran
            study.tell(ft.number, state=TrialState.FAIL)
    sched: Scheduler | None = None
    try:
        with progress.task(f"hyper-parameter search {study_id}", total=cfg["trials"]) as bar:
            bar.advance(_finished(study))
            while True:
                if store.lease_holder(ctx) in (None, getattr(sched, "holder", None)):
                    sched = sched or Scheduler(ctx)  # no scheduler daemon: schedule here (holds no slot)
                    sched.tick()
                while len(active) < cfg["parallel"] and len(study.trials) < cfg["trials"]:
                    t = _submit(ctx, study, study_id, base, space, cfg)
                    active[t.trial.number] = t
                for number, t in list(active.items()):
                    if t.follow(ctx, study):
                        del active[number]
                        bar.advance(1)
                if not active and len(study.trials) >= cfg["trials"]:
                    break
                if stop is not None and stop():
                    raise KeyboardInterrupt
                time.sleep(poll_s)
    finally:
        if sched is not None:
            store.release_lease(ctx, sched.holder)
            with suppress(Exception):  # a Ray executor's bridge gives back the trials' ended actors
                getattr(sched.executor, "close", lambda: None)()
    return write_report(ctx, study, study_id, cfg["sampler"])


class _Trial:
    """One trial and its job: intermediate values in, prune decisions out."""

    def __init__(self, trial: Any, job_id: str, frozen: Any = None) -> None:
        self.trial, self.job_id = trial, job_id
        self.reported = max(frozen.intermediate_values, default=0) if frozen is not None else 0
        self.run_id: str | None = frozen.user_attrs.get("run_id") if frozen is not None else None
        self.pruned = bool(frozen is not None and frozen.user_attrs.get("pruning"))
        self.cancelled = False

    def follow(self, ctx: Context, study: Any) -> bool:
        """Report new values, prune if told to; True once the trial is told its end."""
        from optuna.trial import TrialState

        try:
            row = service.get(ctx, self.job_id)
        except NotFoundError:  # a user deleted the trial's job
            study.tell(self.trial, state=TrialState.FAIL)
            return True
        if self.run_id is None and row.data.get("run_id"):
            self.run_id = row.data["run_id"]
            self.trial.set_user_attr("run_id", self.run_id)
        if self.run_id is not None and not self.pruned:
            for step, value in _val_losses(ctx, self.run_id, self.reported):
                self.trial.report(value, step)
                self.reported = step
                if self.trial.should_prune():
                    self.pruned = True
                    self.trial.set_user_attr("pruning", step)
                    break
        if self.pruned and not self.cancelled and row.state not in FINISHED:
            self.cancelled = True  # also after a driver restart that had decided but not cancelled
            with suppress(ConflictError):  # it finished meanwhile: it is told below
                service.request(ctx, self.job_id, "cancel")
            row = service.get(ctx, self.job_id)
        if row.state not in FINISHED:
            return False
        value = _final_val_loss(ctx, self.run_id) if row.state == "succeeded" else None
        if value is not None:
            study.tell(self.trial, value)  # done before the cancel landed: a complete trial
        elif self.pruned:
            _mark_run(ctx, self.run_id, "pruned")
            study.tell(self.trial, state=TrialState.PRUNED)
        else:
            study.tell(self.trial, state=TrialState.FAIL)
        return True


def _submit(
    ctx: Context, study: Any, study_id: str, base: RunSpec, space: dict[str, ParamSpace], cfg: dict
) -> _Trial:
    trial = study.ask()
    values = {k: suggest(trial, k, p) for k, p in space.items()}
    spec = RunSpec.from_sources(overrides=[_override(k, v) for k, v in values.items()], **base.model_dump())
    try:
        job_id = service.submit(
            ctx,
            service.Submission(
                "train",
                TrainJob(run=spec, model_name=f"{study_id}-t{trial.number}"),
                name=f"{study_id} trial {trial.number}",
                priority_class=cfg["priority"],
                request=Request(cpus=cfg["cpus"]),
            ),
        )
    except BaseException:
        from optuna.trial import TrialState

        study.tell(trial, state=TrialState.FAIL)  # e.g. a quota refusal: the study stays consistent
        raise
    trial.set_user_attr("job_id", job_id)
    return _Trial(trial, job_id)


def _val_losses(ctx: Context, run_id: str, after: int) -> list[tuple[int, float]]:
    if not runs.exists(ctx, run_id):  # the trial's job names its run before the run is recorded
        return []
    return runs.history(ctx, run_id, ["val_loss"], after_step=after).get("val_loss", [])


def _final_val_loss(ctx: Context, run_id: str | None) -> float | None:
    if run_id is None or not runs.exists(ctx, run_id):
        return None
    value = runs.get(ctx, run_id).summary.get("final_val_loss")
    return float(value) if value is not None else None


def _mark_run(ctx: Context, run_id: str | None, status: str) -> None:
    if run_id is not None and runs.exists(ctx, run_id):
        runs.set_status(ctx, run_id, status)


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return sum(t.state != TrialState.RUNNING for t in study.get_trials(deepcopy=False))


def _override(key: str, value: Any) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix(chr(10) + '...')}"


def _probe(p: ParamSpace) -> Any:
    return p.choices[0] if p.choices is not None else (int(p.low) if p.is_int else p.low)  # type: ignore[arg-type]
