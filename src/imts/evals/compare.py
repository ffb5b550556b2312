"""Assemble the before/after comparison of a training run from what the store holds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from imts.core.errors import NotFoundError
from imts.evals.report import ComparisonReport, TrainingCurves, write_report
from imts.evals.service import load_result
from imts.store.models import BaseModelRecord, Metric, Run
from imts.store.workspace import Workspace


def curves(ws: Workspace, run_id: str) -> TrainingCurves:
    with ws.session() as s:
        rows = s.execute(
            select(Metric.key, Metric.step, Metric.value).where(Metric.run_id == run_id).order_by(Metric.step)
        ).all()
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for key, step, value in rows:
        series[key].append((step, value))
    steps = [st for st, _ in series["loss"]]

    def values(key: str) -> list[float]:
        return [v for _, v in series[key]]

    return TrainingCurves(
        step=steps,
        loss=values("loss"),
        lr=values("lr"),
        grad_norm=values("grad_norm"),
        tokens_per_s=values("tokens_per_s"),
        val_step=[st for st, _ in series["val_loss"]],
        val_loss=values("val_loss"),
    )


def find_evals(ws: Workspace, train_run_id: str) -> tuple[str, str]:
    """The newest baseline eval (base model) and tuned eval (the run's model) on the same data."""
    with ws.session() as s:
        run = s.get(Run, train_run_id)
        if run is None or run.kind != "train":
            raise NotFoundError(f"no training run '{train_run_id}'")
        if run.model_version_id is None:
            raise NotFoundError(f"training run {train_run_id} has no model yet (status {run.status})")
        evals = list(
            s.scalars(
                select(Run)
                .where(
                    Run.kind == "eval",
                    Run.status == "succeeded",
                    Run.dataset_version_id == run.dataset_version_id,
                )
                .order_by(Run.created_at.desc())
            )
        )
        tuned = next((e for e in evals if e.model_version_id == run.model_version_id), None)
        base = next(
            (
                e
                for e in evals
                if e.model_version_id is None
                and e.base_model_id == run.base_model_id
                and (tuned is None or e.split == tuned.split)
            ),
            None,
        )
    if tuned is None or base is None:
        missing = "the tuned model" if tuned is None else "the base model"
        raise NotFoundError(
            f"no evaluation of {missing} on the run's dataset version: run `imts eval --model "
            f"{train_run_id if tuned is None else '<base model>'} --data <dataset>` first"
        )
    return base.id, tuned.id


def build(
    ws: Workspace, train_run_id: str, baseline_eval: str | None = None, tuned_eval: str | None = None
) -> ComparisonReport:
    if baseline_eval is None or tuned_eval is None:
        found_base, found_tuned = find_evals(ws, train_run_id)
        baseline_eval, tuned_eval = baseline_eval or found_base, tuned_eval or found_tuned
    with ws.session() as s:
        run = s.get(Run, train_run_id)
        assert run is not None
        base = s.get(BaseModelRecord, run.base_model_id) if run.base_model_id else None
        ev = s.get(Run, tuned_eval)
        spec, summary = dict(run.spec), dict(run.summary)
        lora = spec.get("lora", {})
        seconds, tok_s = summary.get("seconds", 0), summary.get("tokens_per_s", 0)
        facts = {
            "training run": train_run_id,
            "method": spec.get("method", ""),
            "base model": base.name if base else "",
            "trained on": f"{spec.get('data', '')} (split {run.split})",
            "evaluated on": ev.spec.get("data", "") if ev else "",
            "steps x batch": f"{summary.get('steps', '')} x {spec.get('batch_size', '')}",
            "learning rate": str(spec.get("lr", "")),
            "LoRA rank / alpha": f"{lora.get('r', '')} / {lora.get('alpha', '')}",
            "precision": spec.get("precision", ""),
            "training time": f"{seconds:.0f} s ({tok_s:.0f} tokens/s)",
            "model version": summary.get("model_version", ""),
        }
    return ComparisonReport(
        title=f"Before / after fine-tuning: {facts['base model']} -> {facts['model version']}",
        baseline=load_result(ws, baseline_eval),
        tuned=load_result(ws, tuned_eval),
        curves=curves(ws, train_run_id),
        facts=facts,
    )


def write(ws: Workspace, train_run_id: str, report: ComparisonReport) -> dict[str, Path]:
    """Write report.html/.md/.json under the run's reports folder and note it on the run."""
    paths = write_report(report, ws.artifacts.path(f"reports/{train_run_id}"))
    with ws.session() as s:
        run = s.get(Run, train_run_id)
        assert run is not None
        run.summary = {**run.summary, "report": str(paths["html"])}
    return paths
