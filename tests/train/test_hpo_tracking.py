"""Hyper-parameter search (real runs of the tiny model) and metrics export to TensorBoard and MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from imts.core.errors import InputError
from imts.core.settings import Settings
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.registry import base_models
from imts.services.startup import local_context
from imts.store.context import Context as Workspace
from imts.store.models import Metric, Run
from imts.train.hpo import load_space, search
from imts.train.service import train
from imts.train.spec import RunSpec

TINY = ["max_steps=4", "batch_size=4", "eval_every=2", "save_every=100", "warmup_steps=1", "val_max_items=8"]
TINY += ["lora.r=4", "merge=false"]


def _prepare(ws: Workspace, tiny_model: Path, math_file: Path) -> str:
    base_models.add(ws, tiny_model, name="tiny")
    return split_version(ws, import_file(ws, math_file, name="math"), seed=0).ref


def test_grid_search_records_runs_prunes_and_reports(
    ws: Workspace, tiny_model: Path, math_file: Path, tmp_path: Path
) -> None:
    ref = _prepare(ws, tiny_model, math_file)
    space_file = tmp_path / "space.yaml"
    # Two useful learning rates and one that barely moves the loss; the grid's seeded order puts the
    # useless one second, where it loses to the median of the trials before it and is pruned.
    space_file.write_text("lr: {choices: [0.01, 0.000001, 0.02]}\n")
    space = load_space(space_file)
    spec = RunSpec.from_sources(overrides=TINY, base_model="tiny", data=ref)
    result = search(ws, spec, space, sampler="grid", trials=3, seed=0)

    assert len(result.trials) == 3
    assert sorted(t["params"]["lr"] for t in result.trials) == [0.000001, 0.01, 0.02]
    states = {t["state"] for t in result.trials}
    assert "pruned" in states and "complete" in states
    with ws.session() as s:
        runs = {r.id: r for r in s.scalars(select(Run).where(Run.kind == "train")).all()}
    assert len(runs) == 3
    for t in result.trials:  # every trial is a recorded run with the trial's status and learning rate
        run = runs[t["run_id"]]
        assert run.status == {"complete": "succeeded", "pruned": "pruned"}[t["state"]]
        assert run.spec["lr"] == t["params"]["lr"]
    assert result.best_params["lr"] in (0.01, 0.02)
    best_run = runs[result.best_run_id or ""]
    assert best_run.summary["final_val_loss"] == pytest.approx(result.best_value)
    # A pruned run stopped early: fewer val_loss points than a complete one.
    pruned = next(t for t in result.trials if t["state"] == "pruned")
    assert pruned["params"]["lr"] == 0.000001 and list(pruned["intermediate"]) == ["2"]
    assert all(list(t["intermediate"]) == ["2", "4"] for t in result.trials if t["state"] == "complete")
    page = result.report_html.read_text()
    assert "Plotly.newPlot" in page and result.best_run_id in page and "<script src=" not in page
    assert '"importances"' in result.report_json.read_text()


def test_search_space_errors(tmp_path: Path, ws: Workspace) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: {low: 0.1, high: 0.01}\n")
    with pytest.raises(InputError, match="low < high"):
        load_space(bad)
    bad.write_text("- lr\n")
    with pytest.raises(InputError, match="mapping"):
        load_space(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("warmup_steps: {low: 0, high: 10, step: 5}\nno_such_field: {choices: [1]}\n")
    space = load_space(ok)
    assert space["warmup_steps"].grid() == [0, 5, 10]
    spec = RunSpec.from_sources(base_model="b", data="d")
    with pytest.raises(InputError, match="no_such_field"):
        search(ws, spec, space, sampler="random", trials=1)


def test_metrics_go_to_tensorboard_and_mlflow(tmp_path: Path, tiny_model: Path, math_file: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ws = local_context(
        Settings(workspace=tmp_path / "ws", mlflow_tracking_uri=uri, mlflow_experiment="imts-test")
    )
    ref = _prepare(ws, tiny_model, math_file)
    spec = RunSpec.from_sources(overrides=TINY, base_model="tiny", data=ref)
    run_id = train(ws, spec)
    with ws.session() as s:
        stored = s.scalars(select(Metric).where(Metric.run_id == run_id, Metric.key == "loss")).all()
        stored_loss = {m.step: m.value for m in stored}
    assert sorted(stored_loss) == [1, 2, 3, 4]

    acc = EventAccumulator(str(ws.artifacts.path(f"runs/{run_id}/tensorboard")))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "val_loss"} <= tags
    tb_loss = {e.step: e.value for e in acc.Scalars("loss")}
    assert tb_loss == pytest.approx(stored_loss)
    assert [e.step for e in acc.Scalars("val_loss")] == [2, 4]

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("imts-test")
    assert exp is not None
    (ml_run,) = client.search_runs([exp.experiment_id])
    assert ml_run.info.status == "FINISHED" and ml_run.data.tags["imts.run_id"] == run_id
    assert ml_run.data.params["lr"] == str(spec.lr) and ml_run.data.params["lora.r"] == "4"
    history = {m.step: m.value for m in client.get_metric_history(ml_run.info.run_id, "loss")}
    assert history == pytest.approx(stored_loss)
    assert len(client.get_metric_history(ml_run.info.run_id, "val_loss")) == 2
