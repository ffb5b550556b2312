"""HPO trials as real `train` jobs through the scheduler: pruning by cancel, a driver crash, resume."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from sqlalchemy import select
from tests.conftest import ray_ws, write_ray_pool
from tests.jobs.conftest import jobs_ws

from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.jobs import service
from imts.jobs.ray_local import LocalRayCluster
from imts.registry import base_models
from imts.store.models import Run
from imts.train import hpo_jobs as hpo
from imts.train.hpo import ParamSpace
from imts.train.spec import RunSpec

# Tiny trials; eval every step so a bad trial is judged at step 1 and cancelled long before its last step
# (enough steps that the cancel lands first even on a fast machine: 8 steps could finish before it).
STEPS = 40
TINY = [f"max_steps={STEPS}", "batch_size=4", "eval_every=1", "save_every=100", "warmup_steps=0"]
TINY += ["val_max_items=4", "lora.r=4", "merge=false"]


def test_trials_run_as_jobs_are_pruned_by_cancel_and_survive_a_driver_crash(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    ws = jobs_ws(tmp_path, cpus=1)  # one slot: a driver job holding it would deadlock its trials
    ws.settings.heartbeat_timeout_s = 30.0  # torch start-up on a busy machine is not a lost worker
    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math"), seed=0).ref
    spec = RunSpec.from_sources(overrides=TINY, base_model="tiny", data=ref)
    # The grid's seeded order runs a useful lr first and 1e-6 second: it loses to the median at step 1.
    space = {"lr": ParamSpace(choices=[0.01, 0.000001, 0.02])}
    study = hpo.create(ws, spec, space, sampler="grid", trials=2, seed=0)

    def first_trial_running() -> bool:
        return any(r.state == "running" for r in service.list_jobs(ws))

    try:  # the driver "crashes" while its first trial job runs
        hpo.drive(ws, study, poll_s=0.1, stop=first_trial_running)
        raise AssertionError("the driver should have stopped")
    except KeyboardInterrupt:
        pass
    (job,) = service.list_jobs(ws)
    assert job.kind == "train" and job.state in ("starting", "running", "succeeded")  # not lost
    result = hpo.drive(ws, study, poll_s=0.1)  # resumed: re-attaches trial 0, then runs trial 1

    assert [t["params"]["lr"] for t in result.trials] == [0.02, 0.000001]
    assert [t["state"] for t in result.trials] == ["complete", "pruned"]
    jobs = {r.name: r for r in service.list_jobs(ws)}
    assert len(jobs) == 2 and jobs[f"{study} trial 0"].id == job.id  # trial 0 was not submitted twice
    assert jobs[f"{study} trial 0"].state == "succeeded" and jobs[f"{study} trial 1"].state == "cancelled"
    with ws.session() as s:
        runs = {r.id: r for r in s.scalars(select(Run).where(Run.kind == "train"))}
    complete, pruned = (runs[t["run_id"]] for t in result.trials)
    assert complete.status == "succeeded" and complete.summary["steps"] == STEPS
    assert result.best_run_id == complete.id and result.best_value == complete.summary["final_val_loss"]
    assert pruned.status == "pruned" and pruned.spec["lr"] == 0.000001
    assert len(result.trials[1]["intermediate"]) < STEPS  # stopped early by the cancel
    assert result.report_html.exists()


def test_trials_run_in_parallel_as_ray_jobs_within_the_tenant_quota(
    tmp_path: Path, ray_cluster: LocalRayCluster, tiny_model: Path, math_file: Path
) -> None:
    """Three trials asked to run at once on the Ray executor; the tenant may run two jobs at a time:
    two trials run together (as Ray actors), the third waits for the quota, never three at once."""
    ws = ray_ws(tmp_path, ray_cluster, heartbeat_timeout_s=30.0)
    write_ray_pool(ws.settings.pool_file, ray_cluster, tenants={ws.settings.tenant: {"max_concurrent": 2}})  # type: ignore[arg-type]
    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math"), seed=0).ref
    over = ["max_steps=3", "batch_size=4", "eval_every=1", "save_every=100", "warmup_steps=0"]
    spec = RunSpec.from_sources(
        overrides=[*over, "val_max_items=4", "lora.r=4", "merge=false"], base_model="tiny", data=ref
    )
    space = {"lr": ParamSpace(choices=[0.01, 0.02, 0.005])}
    study = hpo.create(ws, spec, space, sampler="grid", trials=3, seed=0, parallel=3)
    running: list[int] = []
    under_ray: set[str] = set()
    held_by_quota: set[str] = set()

    def watch() -> bool:  # called by the driver every poll: what runs now, and under what
        jobs = service.list_jobs(ws)
        now = [j for j in jobs if j.state == "running"]
        running.append(len(now))
        held_by_quota.update(j.id for j in jobs if j.state == "queued" and j.reason.startswith("quota:"))
        for j in now:
            with suppress(OSError, IndexError):
                parent = Path(f"/proc/{j.worker_pid}/status").read_text().split("PPid:")[1].split()[0]
                if b"ray::" in Path(f"/proc/{parent}/cmdline").read_bytes():
                    under_ray.add(j.id)
        return False

    result = hpo.drive(ws, study, poll_s=0.1, stop=watch)
    jobs = service.list_jobs(ws)
    assert len(result.trials) == 3 and len(jobs) == 3 and all(j.kind == "train" for j in jobs)
    assert all(j.state in ("succeeded", "cancelled") for j in jobs)  # done, or pruned by cancel
    assert max(running) == 2  # in parallel, and never beyond the tenant's quota of 2
    assert held_by_quota  # the third trial waited for the quota, not for lack of CPUs
    assert len(under_ray) >= 2  # the trials' workers were children of Ray worker processes
