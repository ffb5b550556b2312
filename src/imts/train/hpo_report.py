"""The report of a hyper-parameter search: best trial, every trial, parameter importances, and plots
(optimisation history, intermediate validation losses, importances, parallel coordinates) as one
self-contained HTML page (plotly.js embedded once, works offline) plus JSON."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imts.store.context import Context


@dataclass(frozen=True)
class HpoResult:
    study_id: str
    best_run_id: str | None
    best_value: float | None
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    importances: dict[str, float]
    report_html: Path
    report_json: Path


def write_report(ctx: Context, study: Any, study_id: str, sampler: str) -> HpoResult:
    """Summarise ``study`` into ``hpo/<study_id>/report.{json,html}`` under the artifacts folder."""
    import optuna
    from optuna.trial import TrialState

    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "run_id": t.user_attrs.get("run_id"),
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
        }
        for t in study.trials
    ]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    importances: dict[str, float] = {}
    if len(complete) >= 2 and len(study.best_trial.params) >= 1:
        try:
            importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError, ZeroDivisionError):
            importances = {}  # all completed trials share one value: nothing to attribute
    folder = ctx.artifacts.path(f"hpo/{study_id}")
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "study_id": study_id,
        "sampler": sampler,
        "best": None
        if best is None
        else {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "run_id": best.user_attrs.get("run_id"),
        },
        "importances": importances,
        "trials": trials,
    }
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    html_path = folder / "report.html"
    html_path.write_text(_html(study, summary, complete), encoding="utf-8")
    return HpoResult(
        study_id,
        summary["best"]["run_id"] if best else None,
        best.value if best else None,
        dict(best.params) if best else {},
        trials,
        importances,
        html_path,
        json_path,
    )


def _html(study: Any, summary: dict[str, Any], complete: list[Any]) -> str:
    from optuna import visualization as vis
    from plotly.offline import get_plotlyjs

    figures = []
    if complete:
        figures.append(vis.plot_optimization_history(study))
        figures.append(vis.plot_parallel_coordinate(study))
    if any(t["intermediate"] for t in summary["trials"]):
        figures.append(vis.plot_intermediate_values(study))
    if summary["importances"]:
        figures.append(vis.plot_param_importances(study))
    plots = "\n".join(f.to_html(full_html=False, include_plotlyjs=False) for f in figures)
    best = summary["best"]
    head = (
        f"<p>Best: trial {best['number']} (run <code>{html.escape(str(best['run_id']))}</code>), "
        f"validation loss <b>{best['value']:.4f}</b>, "
        f"params <code>{html.escape(json.dumps(best['params']))}</code></p>"
        if best
        else "<p>No trial completed.</p>"
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(x))}</td>"
            for x in (
                t["number"],
                t["state"],
                "" if t["value"] is None else f"{t['value']:.4f}",
                json.dumps(t["params"]),
                t["run_id"],
            )
        )
        + "</tr>"
        for t in summary["trials"]
    )
    imp = "".join(f"<li>{html.escape(k)}: {v:.3f}</li>" for k, v in summary["importances"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>IMTS hyper-parameter search {summary["study_id"]}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:2px 8px}}
table{{border-collapse:collapse}}</style></head><body>
<h1>Hyper-parameter search {summary["study_id"]} ({summary["sampler"]})</h1>
{head}
<h2>Parameter importances</h2><ul>{imp or "<li>not available (fewer than 2 completed trials)</li>"}</ul>
<h2>Trials</h2>
<table><tr><th>#</th><th>state</th><th>val loss</th><th>params</th><th>run</th></tr>{rows}</table>
<h2>Plots</h2>
{plots}
</body></html>
"""
