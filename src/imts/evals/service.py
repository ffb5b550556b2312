"""Evaluation runs: generate answers for a dataset split, score them, store per-item results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from imts.core.errors import InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, load_rows, resolve
from imts.evals import generate as gen
from imts.evals.metrics import extract_number, numeric_match, reference_answer
from imts.evals.report import EvalResult, ItemOutcome, accuracy_by_category
from imts.registry.models import ResolvedModel
from imts.registry.models import resolve as resolve_model
from imts.store.models import EvalItem, Run
from imts.store.workspace import Workspace


@dataclass(frozen=True)
class EvalSettings:
    max_new_tokens: int | None = None  # None: derived from the reference answers' lengths
    batch_size: int = 32
    max_items: int | None = None


def generation_budget(tokenizer: Any, references: list[str], cap: int = 512) -> int:
    """Room for the longest reference answer plus a quarter, so a correct answer always fits.

    A batch decodes until its longest row stops; a fixed generous budget lets one rambling answer
    cost every other row in the batch, which on a CPU is most of an evaluation's time.
    """
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    return max(16, min(cap, int(longest * 1.25) + 8))


def evaluate(
    ws: Workspace,
    model_ref: str,
    data_ref: str,
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
    model: ResolvedModel | None = None,
) -> str:
    """Evaluate a model on a dataset (split); returns the eval run id.

    Args:
        model_ref: any model reference (see ``imts.registry.models.resolve``).
        data_ref: dataset reference; without a split, the ``test`` split if the version has one.
    """
    settings = settings or EvalSettings()
    progress = progress or NullProgress()
    ref = resolve(ws, data_ref)
    if ref.version.format != "sft":
        raise InputError(
            f"{ref.version.ref} holds {ref.version.format} rows; evaluation needs an sft dataset"
        )
    if ref.split is None and "test" in ref.version.stats.get("split", {}):
        ref = DataRef(ref.version, "test")
    rows = load_rows(ws, ref)[: settings.max_items]
    if not rows:
        raise NotFoundError(f"{ref} has no rows to evaluate")
    resolved = model or resolve_model(ws, model_ref)
    run_id = new_id("run")
    with ws.session() as s:
        s.add(
            Run(
                id=run_id,
                project_id=ws.project_id,
                kind="eval",
                status="running",
                spec={"model": model_ref, "data": str(ref), **settings.__dict__},
                base_model_id=resolved.base_model_id,
                model_version_id=resolved.model_version_id,
                dataset_version_id=ref.version.id,
                split=ref.split,
                started_at=datetime.now(UTC),
            )
        )
    try:
        tokenizer, model_obj = gen.load(resolved.path)
        prompts = [r["messages"][:-1] for r in rows]
        budget = settings.max_new_tokens or generation_budget(
            tokenizer, [r["messages"][-1]["content"] for r in rows]
        )
        texts, speed = gen.generate(
            tokenizer,
            model_obj,
            prompts,
            budget,
            settings.batch_size,
            progress,
            label=f"evaluating {resolved.label}",
        )
        items = []
        for r, text in zip(rows, texts, strict=True):
            reference = reference_answer(r.get("answer"), r["messages"][-1]["content"])
            extracted = extract_number(text)
            items.append(
                ItemOutcome(
                    item_id=r["id"],
                    category=r.get("category") or "uncategorised",
                    lang=r.get("lang") or "",
                    prompt=r["messages"][-2]["content"],
                    reference=reference,
                    prediction=text,
                    extracted=extracted,
                    correct=numeric_match(extracted, reference),
                )
            )
        acc = accuracy_by_category(EvalResult(resolved.label, model_ref, items))
        summary = {
            "accuracy": acc["all"][0] / acc["all"][1],
            "n": len(items),
            "per_category": {k: {"correct": c, "total": t} for k, (c, t) in acc.items()},
            "model_label": resolved.label,
            "max_new_tokens": budget,
            **{f"gen_{k}": v for k, v in speed.items()},
        }
        with ws.session() as s:
            s.add_all(
                EvalItem(
                    run_id=run_id,
                    item_id=i.item_id,
                    category=i.category,
                    lang=i.lang,
                    prompt=i.prompt,
                    reference=i.reference,
                    prediction=i.prediction,
                    extracted=i.extracted,
                    correct=i.correct,
                    score=float(i.correct),
                )
                for i in items
            )
            run = s.get(Run, run_id)
            assert run is not None
            run.status, run.summary, run.finished_at = "succeeded", summary, datetime.now(UTC)
    except BaseException as exc:
        with ws.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status, run.error, run.finished_at = (
                    "failed",
                    f"{type(exc).__name__}: {exc}",
                    datetime.now(UTC),
                )
        raise
    return run_id


def load_result(ws: Workspace, run_id: str) -> EvalResult:
    """An eval run's per-item outcomes, as the report takes them."""
    with ws.session() as s:
        run = s.get(Run, run_id)
        if run is None or run.kind != "eval":
            raise NotFoundError(f"no evaluation run '{run_id}'")
        rows = s.scalars(select(EvalItem).where(EvalItem.run_id == run_id).order_by(EvalItem.id))
        items = [
            ItemOutcome(
                r.item_id, r.category, r.lang, r.prompt, r.reference, r.prediction, r.extracted, r.correct
            )
            for r in rows
        ]
        summary: dict[str, Any] = dict(run.summary)
        return EvalResult(
            summary.get("model_label", run.spec.get("model", "")), run.spec.get("model", ""), items
        )
