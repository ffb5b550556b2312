"""The runs store: lifecycle of a run, metrics by step, search and comparison, one project at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imts.core.errors import ConflictError, Interrupted, NotFoundError
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.store import runs
from imts.store.context import Context, open_context


def _run(ctx: Context, kind: str = "train", **spec: Any) -> str:
    return runs.create(ctx, kind, {"lr": 0.1, "lora": {"r": 4}, **spec}).id


def test_create_log_finish_history(any_ws: Context) -> None:
    run_id = _run(any_ws, data="m@1", 名="中文")
    assert runs.get(any_ws, run_id).status == "created"
    started = runs.start(any_ws, run_id)
    assert started.status == "running" and started.started_at is not None
    assert runs.log_batch(any_ws, run_id, [(1, {"loss": 2.0, "lr": 1e-3}), (2, {"loss": 1.5})]) == 3
    runs.log_batch(any_ws, run_id, [(2, {"val_loss": 1.7}), (3, {"loss": 1.2})])
    runs.log_event(any_ws, run_id, "checkpoint", "saved", step=2, data={"path": "ckpt-2"})
    assert runs.history(any_ws, run_id) == {
        "loss": [(1, 2.0), (2, 1.5), (3, 1.2)],
        "lr": [(1, 1e-3)],
        "val_loss": [(2, 1.7)],
    }
    assert runs.history(any_ws, run_id, ["loss"], after_step=1) == {"loss": [(2, 1.5), (3, 1.2)]}
    (event,) = runs.events(any_ws, run_id)
    assert (event.step, event.kind, event.message) == (2, "checkpoint", "saved")
    assert event.data == {"path": "ckpt-2"}
    done = runs.finish(any_ws, run_id, "succeeded", {"final_loss": 1.2})
    assert done.status == "succeeded" and done.finished_at is not None and done.error is None
    assert runs.update_summary(any_ws, run_id, {"report": "r.html"}).summary == {
        "final_loss": 1.2,
        "report": "r.html",
    }
    assert runs.get(any_ws, run_id).spec["名"] == "中文"


def test_create_refuses_a_taken_id(ws: Context) -> None:
    run_id = _run(ws)
    with pytest.raises(ConflictError):
        runs.create(ws, "train", {}, run_id=run_id)


def test_search_filters_newest_first(ws: Context, math_file: Path) -> None:
    dv1 = import_file(ws, math_file, name="m")
    dv2 = split_version(ws, dv1, seed=1)
    base_eval = runs.create(ws, "eval", {}, dataset_version_id=dv1.id).id
    tuned_eval = runs.create(ws, "eval", {}, dataset_version_id=dv1.id, split="test").id
    other = runs.create(ws, "eval", {}, dataset_version_id=dv2.id).id
    train = _run(ws)
    for r in (base_eval, tuned_eval, other):
        runs.finish(ws, r, "succeeded")
    assert [r.id for r in runs.search(ws)] == [train, other, tuned_eval, base_eval]
    assert [r.id for r in runs.search(ws, kind="train")] == [train]
    assert [r.id for r in runs.search(ws, "eval", "succeeded", dataset_version_id=dv1.id)] == [
        tuned_eval,
        base_eval,
    ]
    assert [r.id for r in runs.search(ws, model_version_id=None, limit=2)] == [train, other]
    assert runs.search(ws, status="failed") == []


def test_compare_lines_up_specs_and_summaries(ws: Context) -> None:
    a = _run(ws, method="sft_lora")
    b = runs.create(ws, "train", {"lr": 0.2, "lora": {"r": 4}, "seed": 1}).id
    runs.finish(ws, a, "succeeded", {"final_loss": 1.0, "model_version": "m:1", "metrics": {"f1": 0.5}})
    runs.finish(ws, b, "succeeded", {"final_loss": 0.8, "truncated": 3})
    cmp = runs.compare(ws, [a, b])
    assert [r.id for r in cmp.runs] == [a, b]
    assert cmp.params["lora.r"] == [4, 4] and cmp.params["seed"] == [None, 1]
    assert cmp.differing == ["lr", "method", "seed"]
    assert cmp.metrics == {"final_loss": [1.0, 0.8], "metrics.f1": [0.5, None], "truncated": [None, 3.0]}


def test_another_project_cannot_see_or_write_the_run(ws: Context) -> None:
    run_id = _run(ws)
    other = open_context(ws.ws, "t2", "p2")
    assert runs.search(other) == []
    assert not runs.exists(other, run_id)
    for call in (
        lambda: runs.get(other, run_id),
        lambda: runs.history(other, run_id),
        lambda: runs.events(other, run_id),
        lambda: runs.log_batch(other, run_id, [(1, {"loss": 1.0})]),
        lambda: runs.log_event(other, run_id, "x", "y"),
        lambda: runs.finish(other, run_id, "failed"),
        lambda: runs.compare(other, [run_id]),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(ConflictError):  # nor resume it as its own
        runs.begin(other, "train", {}, run_id=run_id)
    assert runs.history(ws, run_id) == {} and runs.get(ws, run_id).status == "created"


def test_lifecycle_succeeds_with_summary_and_batches_metrics(ws: Context) -> None:
    with runs.run_lifecycle(ws, "train", {"lr": 0.1}) as run:
        assert runs.get(ws, run.id).status == "running"
        run.sink.metrics(1, {"loss": 2.0})
        assert runs.history(ws, run.id) == {}  # batched
        run.sink.metrics(2, {"val_loss": 1.5})  # flushed at once: HPO prunes on it
        assert runs.history(ws, run.id)["loss"] == [(1, 2.0)]
        run.sink.metrics(3, {"loss": 1.0})
        run.sink.event("checkpoint", "saved", 3)  # an event flushes what is pending first
        assert runs.history(ws, run.id)["loss"] == [(1, 2.0), (3, 1.0)]
        run.summary = {"steps": 3, "final_loss": 1.0}
    view = runs.get(ws, run.id)
    assert view.status == "succeeded" and view.summary == {"steps": 3, "final_loss": 1.0}
    assert view.output_dir == str(ws.artifacts.path(f"runs/{run.id}"))
    assert [e.kind for e in runs.events(ws, run.id)] == ["checkpoint"]


class Pruned(Exception):
    run_status = "pruned"


@pytest.mark.parametrize(
    ("exc", "status"),
    [(RuntimeError("boom"), "failed"), (Interrupted(5), "preempted"), (Pruned("trial 3"), "pruned")],
)
def test_lifecycle_statuses(ws: Context, exc: BaseException, status: str) -> None:
    with pytest.raises(type(exc)), runs.run_lifecycle(ws, "train", {}) as run:
        run.sink.metrics(1, {"loss": 2.0})
        raise exc
    view = runs.get(ws, run.id)
    assert view.status == status and view.error == f"{type(exc).__name__}: {exc}"
    assert view.finished_at is not None
    assert runs.history(ws, run.id) == {"loss": [(1, 2.0)]}  # pending metrics are kept


def test_lifecycle_resumes_an_existing_run(ws: Context) -> None:
    with pytest.raises(Interrupted), runs.run_lifecycle(ws, "train", {"lr": 0.1}) as run:
        raise Interrupted(2)
    with runs.run_lifecycle(ws, "train", {"lr": 0.1}, run_id=run.id) as again:
        assert runs.get(ws, run.id).status == "running" and runs.get(ws, run.id).error is None
        again.summary = {"steps": 4}
    assert again.id == run.id and runs.get(ws, run.id).status == "succeeded"
    assert len(runs.search(ws)) == 1


def test_explicit_succeed_and_summary_export(ws: Context) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = runs.begin(ws, "eval", {"model": "tiny", "data": "m@1:test"})
    run.succeed({"accuracy": 0.75, "n": 4, "model_label": "tiny", "metrics": {"exact_match": 0.75}})
    assert runs.get(ws, run.id).summary["accuracy"] == 0.75
    acc = EventAccumulator(str(ws.artifacts.path(f"runs/{run.id}/tensorboard")))
    acc.Reload()
    assert {"summary/accuracy", "summary/n", "summary/metrics.exact_match"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("summary/accuracy")[0].value == pytest.approx(0.75)
