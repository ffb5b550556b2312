"""Two tenants' work in one process: neither lists, reads, references nor overwrites the other's objects.

Tenant A trains and evaluates a model and runs a job; tenant B, on the same workspace in the same
process, tries every service on A's ids and names. Datasets and model versions are covered in depth by
``tests/data/test_tenancy.py``; this test covers runs and metrics, evaluations, training, reports and
jobs, and that B's own work with the same names is independent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imts.core.errors import NotFoundError
from imts.data import service as data
from imts.evals import compare
from imts.evals.service import EvalSettings, evaluate, item_scores, load_result
from imts.jobs import service as jobs
from imts.registry import service as registry
from imts.store import runs
from imts.store.context import Context, open_context
from imts.train.service import train
from imts.train.spec import RunSpec

TINY = ["max_steps=2", "batch_size=4", "save_every=100", "warmup_steps=1", "val_max_items=4"]
EVAL = EvalSettings(max_new_tokens=4, max_items=6, batch_size=6)


def _refused(call: Callable[[], Any]) -> None:
    with pytest.raises(NotFoundError):
        call()


def _work(ctx: Context, tiny_model: Path, math_file: Path) -> dict[str, str]:
    """Import, split, baseline, train, evaluate, report and a job, in ``ctx``'s project."""
    if not registry.list_base_models(ctx):
        registry.add_base_model(ctx, tiny_model, name="tiny")
    split = data.split_version(ctx, data.import_file(ctx, str(math_file), "math").ref, seed=0)
    baseline = evaluate(ctx, "tiny", f"{split.ref}:test", EVAL)
    run_id = train(ctx, RunSpec.from_sources(overrides=TINY, base_model="tiny", data=split.ref))
    tuned = evaluate(ctx, run_id, f"{split.ref}:test", EVAL)
    compare.write(ctx, run_id, compare.build(ctx, run_id, baseline, tuned, cluster=False))
    job = jobs.submit(ctx, jobs.Submission("sleep", {"seconds": 60}))
    return {"split": split.ref, "train": run_id, "baseline": baseline, "tuned": tuned, "job": job}


def test_two_tenants_in_one_process(ws: Context, tiny_model: Path, math_file: Path) -> None:
    a = ws
    b = open_context(a.ws, "tenant-b", a.project)  # same project name, another tenant
    assert (b.tenant_id, b.project_id) != (a.tenant_id, a.project_id)
    mine = _work(a, tiny_model, math_file)

    # B lists nothing of A's.
    assert runs.search(b) == [] and data.list_versions(b) == []
    assert registry.list_model_versions(b) == [] and jobs.list_jobs(b) == []
    assert {r.id for r in runs.search(a)} >= {mine["train"], mine["baseline"], mine["tuned"]}

    # B reads nothing of A's: runs, metrics, events, evaluation items, jobs and their logs.
    for run_id in (mine["train"], mine["baseline"], mine["tuned"]):
        _refused(lambda run_id=run_id: runs.get(b, run_id))
        _refused(lambda run_id=run_id: runs.history(b, run_id))
        _refused(lambda run_id=run_id: runs.events(b, run_id))
        _refused(lambda run_id=run_id: runs.compare(b, [run_id]))
    _refused(lambda: load_result(b, mine["tuned"]))
    _refused(lambda: item_scores(b, mine["tuned"]))
    _refused(lambda: jobs.get(b, mine["job"]))
    _refused(lambda: jobs.events(b, mine["job"]))
    _refused(lambda: jobs.logs(b, mine["job"]))

    # B references nothing of A's: A's data in a run spec or an evaluation, A's model, A's runs in a report.
    _refused(lambda: train(b, RunSpec.from_sources(overrides=TINY, base_model="tiny", data=mine["split"])))
    _refused(lambda: evaluate(b, mine["train"], "math@2:test", EVAL))
    _refused(lambda: evaluate(b, "math-tiny", "math@2:test", EVAL))
    _refused(lambda: compare.build(b, mine["train"], cluster=False))
    _refused(lambda: compare.build_models(b, [mine["baseline"], mine["tuned"]], cluster=False))
    _refused(lambda: jobs.submit(b, jobs.Submission("eval", {"model": mine["train"], "suite": {}})))

    # B overwrites nothing of A's: metrics, run status, job state.
    _refused(lambda: runs.log_batch(b, mine["train"], [(99, {"loss": 0.0})]))
    _refused(lambda: runs.finish(b, mine["train"], "failed"))
    for action in ("pause", "cancel", "retry", "delete"):
        _refused(lambda action=action: jobs.request(b, mine["job"], action))
    assert runs.get(a, mine["train"]).status == "succeeded"
    assert max(s for s, _ in runs.history(a, mine["train"])["loss"]) == 2
    assert jobs.get(a, mine["job"]).state == "queued"

    # B's own work under the same names is its own: dataset and model version numbers start at 1.
    theirs = _work(b, tiny_model, math_file)
    assert theirs["split"] == mine["split"] == "math@2"
    assert [v.label for v in registry.list_model_versions(b)] == ["math-tiny:1"]
    assert [v.label for v in registry.list_model_versions(a)] == ["math-tiny:1"]
    assert {r.id for r in runs.search(b)}.isdisjoint({r.id for r in runs.search(a)})
    assert [j.id for j in jobs.list_jobs(b)] == [theirs["job"]]
    jobs.request(a, mine["job"], "cancel")
    jobs.request(b, theirs["job"], "cancel")
