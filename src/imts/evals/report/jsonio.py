"""The report as the machine-readable ``report.json``, and back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from imts.evals.report.model import (
    ComparisonReport,
    EvalResult,
    ItemOutcome,
    TrainingCurves,
    accuracy_by_category,
    category_rows,
    changed_items,
)

__all__ = ["JSON_SCHEMA_VERSION", "report_from_dict", "report_to_dict"]

JSON_SCHEMA_VERSION = 1


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats (a diverged loss) with ``None`` so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def report_to_dict(report: ComparisonReport) -> dict[str, Any]:
    """Convert a report to the JSON-ready dict written as ``report.json``.

    Holds every input plus computed per-category accuracies and the fixed/broken item ids. Non-finite
    floats in the curves become ``None``.

    Args:
        report: The comparison to convert.

    Returns:
        A dict of plain JSON types.

    Raises:
        ValueError: If the baseline and tuned item sets differ.
    """
    fixed, broken = changed_items(report.baseline, report.tuned)
    total = category_rows(report)[-1]

    def acc(result: EvalResult) -> dict[str, dict[str, Any]]:
        return {
            cat: {"correct": c, "total": t, "accuracy": None if t == 0 else c / t}
            for cat, (c, t) in accuracy_by_category(result).items()
        }

    data = {
        "schema_version": JSON_SCHEMA_VERSION,
        "title": report.title,
        "title_key": report.title_key,
        "title_args": dict(report.title_args),
        "facts": dict(report.facts),
        "baseline": asdict(report.baseline),
        "tuned": asdict(report.tuned),
        "curves": None if report.curves is None else asdict(report.curves),
        "computed": {
            "n_items": total.n,
            "accuracy": {"baseline": acc(report.baseline), "tuned": acc(report.tuned)},
            "gain_points": total.delta,
            "fixed_ids": [b.item_id for b, _ in fixed],
            "broken_ids": [b.item_id for b, _ in broken],
        },
    }
    if report.extras is not None:
        data["extras"] = report.extras.to_dict()
    return _json_safe(data)


def _result_from_dict(data: Mapping[str, Any]) -> EvalResult:
    return EvalResult(
        label=data["label"],
        model_ref=data["model_ref"],
        items=[ItemOutcome(**item) for item in data["items"]],
    )


def _floats(values: list[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def report_from_dict(data: Mapping[str, Any]) -> ComparisonReport:
    """Rebuild a report from :func:`report_to_dict` output (e.g. a loaded ``report.json``).

    The ``computed`` and ``extras`` sections are ignored; curve values stored as ``None`` come back as NaN.

    Args:
        data: The dict to read.

    Returns:
        The reconstructed report.
    """
    curves = data.get("curves")
    return ComparisonReport(
        title=data["title"],
        title_key=data.get("title_key", ""),
        title_args=dict(data.get("title_args", {})),
        baseline=_result_from_dict(data["baseline"]),
        tuned=_result_from_dict(data["tuned"]),
        curves=None
        if curves is None
        else TrainingCurves(
            step=[int(s) for s in curves["step"]],
            loss=_floats(curves["loss"]),
            lr=_floats(curves["lr"]),
            grad_norm=_floats(curves["grad_norm"]),
            tokens_per_s=_floats(curves["tokens_per_s"]),
            val_step=[int(s) for s in curves.get("val_step", [])],
            val_loss=_floats(curves.get("val_loss", [])),
        ),
        facts={str(k): str(v) for k, v in data.get("facts", {}).items()},
    )
