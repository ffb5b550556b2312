"""Assemble the before/after comparison of a training run from what the store holds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from imts.core.errors import InputError, NotFoundError
from imts.core.progress import Progress
from imts.data.versions import resolve
from imts.evals.analysis import build_extras
from imts.evals.report import ComparisonReport, EvalResult, Lang, TrainingCurves, write_report
from imts.evals.service import evaluate, item_scores, load_result
from imts.registry import base_models
from imts.store import runs
from imts.store.context import Context


def curves(ctx: Context, run_id: str) -> TrainingCurves:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list, runs.history(ctx, run_id))
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


def _train_run(ctx: Context, train_run_id: str) -> runs.RunView:
    run = runs.get(ctx, train_run_id) if runs.exists(ctx, train_run_id) else None
    if run is None or run.kind != "train":
        raise NotFoundError(f"no training run '{train_run_id}'")
    if run.model_version_id is None:
        raise NotFoundError(f"training run {train_run_id} has no model yet (status {run.status})")
    return run


def _found_evals(ctx: Context, run: runs.RunView) -> tuple[str | None, str | None]:
    # Only whole evaluations (no --limit): two of them on one split hold the same items.
    evals = [
        e
        for e in runs.search(ctx, "eval", "succeeded", dataset_version_id=run.dataset_version_id)
        if e.spec.get("max_items") is None
    ]
    tuned = next((e for e in evals if e.model_version_id == run.model_version_id), None)
    base = next(
        (
            e
            for e in evals
            if e.model_version_id is None
            and e.base_model_id == run.base_model_id
            and (tuned is None or (e.split == tuned.split and tools_of(e) == tools_of(tuned)))
        ),
        None,
    )
    return (base.id if base else None), (tuned.id if tuned else None)


def tools_of(run: runs.RunView) -> list[str]:
    """The decoding tools an eval run generated with (``imts.inference.tools``)."""
    return sorted(run.spec.get("tools") or [])


def _same_tools(ctx: Context, run_ids: list[str]) -> list[str]:
    """The decoding tools all ``run_ids`` share; refuses evaluations decoded with different tools (a
    calculator changes what a model's answers score, so they compare only with their own kind)."""
    used = [tools_of(runs.get(ctx, r)) for r in run_ids]
    for run_id, tools in zip(run_ids[1:], used[1:], strict=True):
        if tools != used[0]:
            raise InputError(
                f"evaluations {run_ids[0]} (decoding tools: {', '.join(used[0]) or 'none'}) and {run_id} "
                f"({', '.join(tools) or 'none'}) decoded differently: compare evaluations made with the "
                "same --tools",
                field="tuned",
            )
    return used[0]


def missing_evals(ctx: Context, train_run_id: str) -> list[tuple[str, str]]:
    """The evaluations a before/after report of the run still needs, as (model, dataset) references:
    the base model and the run's model on the run's dataset version (its test split when it has one).
    A DPO run's version holds preference pairs: evaluating it scores preference accuracy (how often the
    model finds the chosen response likelier than the rejected one, DPO's reward accuracy)."""
    run = _train_run(ctx, train_run_id)
    base, tuned = _found_evals(ctx, run)
    ref = resolve(ctx, run.dataset_version_id or "")
    data = f"{ref.version.ref}:test" if "test" in ref.version.stats.get("split", {}) else ref.version.ref
    out = []
    if base is None:
        out.append((base_models.get(ctx, run.base_model_id or "").name, data))
    if tuned is None:
        out.append((train_run_id, data))
    return out


def find_evals(ctx: Context, train_run_id: str) -> tuple[str, str]:
    """The newest baseline eval (base model) and tuned eval (the run's model) on the same data."""
    run = _train_run(ctx, train_run_id)
    base, tuned = _found_evals(ctx, run)
    if tuned is None or base is None:
        todo = missing_evals(ctx, train_run_id)
        commands = " and ".join(f"`imts eval --model {m} --data {d}`" for m, d in todo)
        what = "preference accuracy on its pairs" if run.spec.get("method") == "dpo" else "the same items"
        raise NotFoundError(
            f"the report compares the base model and the run's model on {what}; missing: run {commands} "
            f"first, or `imts report {train_run_id} --evaluate` to run them now"
        )
    return base, tuned


def evaluate_missing(ctx: Context, train_run_id: str, progress: Progress | None = None) -> list[str]:
    """Run the evaluations the report still needs (see :func:`missing_evals`), in this process."""
    return [evaluate(ctx, model, data, progress=progress) for model, data in missing_evals(ctx, train_run_id)]


def judge_comments(ctx: Context, eval_run_id: str) -> dict[str, str]:
    """item id -> the judges' verdicts and rationales on that run's answers, as one line."""
    out = {}
    for item_id, scores in item_scores(ctx, eval_run_id).items():
        notes = [
            f"{n[6:]}: {label} ({note})" for n, (_, label, note) in scores.items() if n.startswith("judge:")
        ]
        if notes:
            out[item_id] = "; ".join(notes)
    return out


def build_models(ctx: Context, eval_runs: list[str], cluster: bool = True) -> ComparisonReport:
    """A comparison of two or more model versions evaluated on the same items (oldest first)."""
    if len(eval_runs) < 2:
        raise NotFoundError("a comparison needs at least two eval runs")
    tools = _same_tools(ctx, eval_runs)
    results = [load_result(ctx, e) for e in eval_runs]
    labels = [r.label for r in results]
    return ComparisonReport(
        title=f"Comparison of {len(results)} models: {' vs '.join(labels)}",
        title_key="title.models",
        title_args={"n": str(len(results)), "labels": " vs ".join(labels)},
        baseline=results[0],
        tuned=results[-1],
        curves=None,
        facts={
            f"model {n + 1}": f"{r.label} (eval {e})"
            for n, (r, e) in enumerate(zip(results, eval_runs, strict=True))
        }
        | ({"decoding tools": ", ".join(tools)} if tools else {}),
        extras=build_extras(results, judge_comments(ctx, eval_runs[-1]), cluster=cluster),
    )


def build(
    ctx: Context,
    train_run_id: str,
    baseline_eval: str | None = None,
    tuned_eval: str | None = None,
    others: list[str] | None = None,
    cluster: bool = True,
) -> ComparisonReport:
    """The before/after report of a training run; ``others``: more eval runs (other model versions on the
    same items) to rank between the baseline and the tuned model."""
    if baseline_eval is None or tuned_eval is None:
        found_base, found_tuned = find_evals(ctx, train_run_id)
        baseline_eval, tuned_eval = baseline_eval or found_base, tuned_eval or found_tuned
    run, ev = runs.get(ctx, train_run_id), runs.get(ctx, tuned_eval)
    base_name = base_models.get(ctx, run.base_model_id).name if run.base_model_id else ""
    spec, summary = run.spec, run.summary
    lora = spec.get("lora", {})
    seconds, tok_s = summary.get("seconds", 0), summary.get("tokens_per_s", 0)
    facts = {
        "training run": train_run_id,
        "method": spec.get("method", ""),
        "base model": base_name,
        "trained on": f"{spec.get('data', '')} (split {run.split})",
        "evaluated on": ev.spec.get("data", ""),
        "steps x batch": f"{summary.get('steps', '')} x {spec.get('batch_size', '')}",
        "learning rate": str(spec.get("lr", "")),
        "LoRA rank / alpha": f"{lora.get('r', '')} / {lora.get('alpha', '')}",
        "precision": spec.get("precision", ""),
        "training time": f"{seconds:.0f} s ({tok_s:.0f} tokens/s)",
        "model version": summary.get("model_version", ""),
    }
    compared = [baseline_eval, *(others or []), tuned_eval]
    if tools := _same_tools(ctx, compared):
        facts["decoding tools"] = ", ".join(tools)
    results = [load_result(ctx, e) for e in compared]
    _same_items(results, compared)
    return ComparisonReport(
        title=f"Before / after fine-tuning: {facts['base model']} -> {facts['model version']}",
        title_key="title.before_after",
        title_args={"base": facts["base model"], "model": facts["model version"]},
        baseline=results[0],
        tuned=results[-1],
        curves=curves(ctx, train_run_id),
        facts=facts,
        extras=build_extras(results, judge_comments(ctx, tuned_eval), cluster=cluster),
    )


def _same_items(results: list[EvalResult], run_ids: list[str]) -> None:
    """Refuse evaluations of different items before anything is drawn (a report pairs them by item)."""
    first = {i.item_id for i in results[0].items}
    for result, run_id in zip(results[1:], run_ids[1:], strict=True):
        items = {i.item_id for i in result.items}
        if items != first:
            raise InputError(
                f"evaluations {run_ids[0]} ({len(first)} items) and {run_id} ({len(items)} items) hold "
                f"different items ({len(first ^ items)} not in both): compare evaluations of the same "
                "dataset split without --limit, or name them with --baseline/--tuned",
                field="tuned",
            )


def write(ctx: Context, run_id: str, report: ComparisonReport, lang: Lang = "en") -> dict[str, Path]:
    """Write report.html/.md/.json (in ``lang``) under ``reports/<run_id>`` and note it on the run."""
    paths = write_report(report, ctx.artifacts.path(f"reports/{run_id}"), lang=lang)
    if runs.exists(ctx, run_id):
        runs.update_summary(ctx, run_id, {"report": str(paths["html"])})
    return paths
