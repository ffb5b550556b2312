"""Comparison reports as a service: generate one (before/after a training run, or 2+ evaluated models)
and fetch its files; what ``imts report`` does, for the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from imts.core.errors import InputError, NotFoundError
from imts.core.permissions import Permission
from imts.evals import compare
from imts.evals.report.i18n import Lang
from imts.store import audit, runs
from imts.store.context import Context

ReportFormat = Literal["json", "html", "md"]


class ReportRequest(BaseModel):
    """A training run (with optional eval runs to pin), or two or more eval runs to compare."""

    run_id: str | None = Field(None, description="Training run; omit to compare `evals` only.")
    baseline: str | None = Field(None, description="Baseline eval run (default: newest of the base model).")
    tuned: str | None = Field(None, description="Tuned eval run (default: newest of the run's model).")
    evals: list[str] = Field(default_factory=list, description="Eval runs to compare (oldest first).")
    clusters: bool = Field(False, description="Cluster the failed items (MiniLM embeddings; slower).")
    lang: Lang = "en"


class ReportView(BaseModel):
    """A written report: the run it is filed under, its title and its data (``report.json``)."""

    run_id: str
    lang: str
    title: str
    formats: list[str]
    report: dict[str, Any]


def generate(ctx: Context, req: ReportRequest) -> ReportView:
    """Build and write a comparison report under ``reports/<run>`` (atomically), audited.

    Raises:
        InputError: neither a training run nor two eval runs, or runs that do not compare.
        NotFoundError: a run is not in this project.
    """
    ctx.require(Permission.MODEL_TRAIN)
    if req.run_id is not None:
        rep = compare.build(ctx, req.run_id, req.baseline, req.tuned, others=req.evals, cluster=req.clusters)
        key = req.run_id
    elif len(req.evals) >= 2:
        rep = compare.build_models(ctx, req.evals, cluster=req.clusters)
        key = req.evals[-1]
    else:
        raise InputError("give a training run id, or two or more eval runs", field="evals")
    try:
        paths = compare.write(ctx, key, rep, lang=req.lang)
    except ValueError as exc:  # the runs were not evaluated on the same items
        raise InputError(str(exc), field="evals") from exc
    with ctx.session() as s:
        audit.record(ctx, s, "report.generate", ("report", key), None, {"lang": req.lang, "title": rep.title})
    return get(ctx, key, paths["json"])


def get(ctx: Context, run_id: str, path: Path | None = None) -> ReportView:
    """The report filed under ``run_id`` (a run of this project).

    Raises:
        NotFoundError: no such run here, or no report for it yet.
    """
    data = json.loads((path or report_file(ctx, run_id, "json")).read_text(encoding="utf-8"))
    with report_file(ctx, run_id, "html").open(encoding="utf-8") as f:
        lang = "zh" if "<html lang='zh'" in f.read(400) else "en"
    title = str(data.get("title", ""))
    return ReportView(run_id=run_id, lang=lang, title=title, formats=["json", "html", "md"], report=data)


def report_file(ctx: Context, run_id: str, fmt: ReportFormat) -> Path:
    """The path of one file of the report filed under ``run_id``, once the run is known to be this
    project's (report folders are named by run id, so the run check is what scopes them)."""
    ctx.require(Permission.METRICS_VIEW)
    runs.get(ctx, run_id)
    path = ctx.artifacts.path(f"reports/{run_id}") / f"report.{fmt}"
    if not path.is_file():
        raise NotFoundError(f"no report for run '{run_id}' yet (POST .../reports to generate one)")
    return path
