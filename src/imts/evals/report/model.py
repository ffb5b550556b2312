"""What a comparison report holds, and the computations every rendering shares (the diff).

A report compares the baseline model and the tuned model (optionally more versions in between, in
:class:`ReportExtras`) on the same evaluation items. Nothing here renders: Markdown, HTML and JSON live in
the sibling modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from imts.evals.report.i18n import check_lang, t

__all__ = [
    "ALL",
    "CategoryRow",
    "Cluster",
    "ComparisonReport",
    "EvalResult",
    "ItemOutcome",
    "PairSignificance",
    "ReportExtras",
    "TrainingCurves",
    "accuracy_by_category",
    "category_rows",
    "changed_items",
    "fmt_delta",
    "fmt_pct",
    "one_line",
    "truncate",
]

ALL = "all"
_MAX_IDS_IN_ERROR = 20


# --------------------------------------------------------------------------------------------------------
# Input types
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemOutcome:
    """One evaluated item for one model."""

    item_id: str
    category: str  # e.g. addition, division, multi_step ("all" never appears here)
    lang: str  # "en" | "zh"
    prompt: str
    reference: str  # expected final answer (e.g. "16")
    prediction: str  # model's generated text
    extracted: str | None  # number extracted from the prediction, None if none found
    correct: bool


@dataclass(frozen=True)
class EvalResult:
    """The outcomes of one model on an evaluation set."""

    label: str  # e.g. "baseline (smollm2-135m-instruct)" or "tuned (run r_123)"
    model_ref: str
    items: list[ItemOutcome]  # same item_ids for both sides of a comparison


@dataclass(frozen=True)
class TrainingCurves:
    """Per-step training metrics; every list is parallel to ``step`` (validation lists to ``val_step``)."""

    step: list[int]
    loss: list[float]
    lr: list[float]
    grad_norm: list[float]
    tokens_per_s: list[float]
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PairSignificance:
    """Paired tests between two models on the same items (McNemar on accuracy, bootstrap on the score)."""

    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # items only A got right
    only_b: int
    p_value: float
    method: str
    diff: float  # mean B - A of the item score
    low: float
    high: float


@dataclass(frozen=True)
class Cluster:
    """A cluster of items some model got wrong, with its error rate before and after."""

    label: str
    category: str
    terms: list[str]
    size: int
    error_before: float
    error_after: float
    examples: list[dict[str, str]]


@dataclass
class ReportExtras:
    """What the report adds beyond before/after (computed by :mod:`imts.evals.analysis`)."""

    models: list[str]
    significance: list[PairSignificance] = field(default_factory=list)
    win_rate: list[dict[str, Any]] = field(default_factory=list)  # a, b, rate, low, high, n
    ranking: dict[str, float] = field(default_factory=dict)  # Bradley–Terry strength, best first
    clusters: list[Cluster] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ComparisonReport:
    """Everything the before/after report shows."""

    title: str
    baseline: EvalResult
    tuned: EvalResult
    curves: TrainingCurves | None
    facts: dict[str, str]  # ordered key facts: base model, dataset version, run id, method, steps, time, ...
    extras: ReportExtras | None = None  # significance, win rates, clusters
    # The title as a catalogue entry (``i18n``) and its values, so it reads in the report's language;
    # ``title`` is the English text (and what a report without an entry shows).
    title_key: str = ""
    title_args: dict[str, str] = field(default_factory=dict)

    def heading(self, lang: str = "en") -> str:
        """The title in ``lang``."""
        return t(self.title_key, check_lang(lang), **self.title_args) if self.title_key else self.title


# --------------------------------------------------------------------------------------------------------
# Computations
# --------------------------------------------------------------------------------------------------------


def accuracy_by_category(result: EvalResult) -> dict[str, tuple[int, int]]:
    """Count correct answers per category.

    Args:
        result: The evaluation result to summarise.

    Returns:
        ``category -> (correct, total)`` with categories in order of first appearance, followed by the key
        ``"all"`` covering every item (``(0, 0)`` for an empty result).

    Raises:
        ValueError: If an item uses the reserved category name ``"all"``.
    """
    counts: dict[str, list[int]] = {}
    for item in result.items:
        if item.category == ALL:
            raise ValueError(f"item {item.item_id!r} uses the reserved category name {ALL!r}")
        c = counts.setdefault(item.category, [0, 0])
        c[0] += int(item.correct)
        c[1] += 1
    out = {cat: (c[0], c[1]) for cat, c in counts.items()}
    out[ALL] = (sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
    return out


def _format_ids(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_IN_ERROR])
    if len(ids) > _MAX_IDS_IN_ERROR:
        shown += f", ... ({len(ids) - _MAX_IDS_IN_ERROR} more)"
    return shown


def _index_by_id(result: EvalResult, side: str) -> dict[str, ItemOutcome]:
    index: dict[str, ItemOutcome] = {}
    duplicates: set[str] = set()
    for item in result.items:
        if item.item_id in index:
            duplicates.add(item.item_id)
        index[item.item_id] = item
    if duplicates:
        raise ValueError(f"{side} result has duplicate item ids: {_format_ids(duplicates)}")
    return index


def changed_items(
    baseline: EvalResult, tuned: EvalResult
) -> tuple[list[tuple[ItemOutcome, ItemOutcome]], list[tuple[ItemOutcome, ItemOutcome]]]:
    """Find the items whose correctness changed between the baseline and the tuned model.

    Args:
        baseline: Result of the model before fine-tuning.
        tuned: Result of the model after fine-tuning, on the same items.

    Returns:
        ``(fixed, broken)``: lists of ``(baseline_item, tuned_item)`` pairs matched by ``item_id``, in the
        baseline's item order. ``fixed`` went wrong -> right, ``broken`` went right -> wrong.

    Raises:
        ValueError: If the two item sets differ (the message names the ids missing on each side) or a side
            has duplicate item ids.
    """
    base_idx = _index_by_id(baseline, "baseline")
    tuned_idx = _index_by_id(tuned, "tuned")
    missing_in_tuned = base_idx.keys() - tuned_idx.keys()
    missing_in_baseline = tuned_idx.keys() - base_idx.keys()
    if missing_in_tuned or missing_in_baseline:
        parts = []
        if missing_in_tuned:
            parts.append(f"missing from tuned ({len(missing_in_tuned)}): {_format_ids(missing_in_tuned)}")
        if missing_in_baseline:
            parts.append(
                f"missing from baseline ({len(missing_in_baseline)}): {_format_ids(missing_in_baseline)}"
            )
        raise ValueError("baseline and tuned item sets differ; " + "; ".join(parts))
    fixed: list[tuple[ItemOutcome, ItemOutcome]] = []
    broken: list[tuple[ItemOutcome, ItemOutcome]] = []
    for item_id, before in base_idx.items():
        after = tuned_idx[item_id]
        if not before.correct and after.correct:
            fixed.append((before, after))
        elif before.correct and not after.correct:
            broken.append((before, after))
    return fixed, broken


def _pct(correct: int, total: int) -> float | None:
    return None if total == 0 else 100.0 * correct / total


@dataclass(frozen=True)
class CategoryRow:
    """One row of the per-category table: item count and ``(correct, total)`` on each side."""

    category: str
    n: int
    base: tuple[int, int]
    tuned: tuple[int, int]

    @property
    def base_pct(self) -> float | None:
        return _pct(*self.base)

    @property
    def tuned_pct(self) -> float | None:
        return _pct(*self.tuned)

    @property
    def delta(self) -> float | None:
        b, t = self.base_pct, self.tuned_pct
        return None if b is None or t is None else t - b


def category_rows(report: ComparisonReport) -> list[CategoryRow]:
    """Per-category rows (union of both sides, first-appearance order), the ``all`` row last."""
    base = accuracy_by_category(report.baseline)
    tuned = accuracy_by_category(report.tuned)
    cats = [c for c in base if c != ALL] + [c for c in tuned if c != ALL and c not in base]
    rows = []
    for cat in [*cats, ALL]:
        b = base.get(cat, (0, 0))
        t = tuned.get(cat, (0, 0))
        rows.append(CategoryRow(cat, max(b[1], t[1]), b, t))
    return rows


# --------------------------------------------------------------------------------------------------------
# Formatting shared by the renderings
# --------------------------------------------------------------------------------------------------------


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def fmt_delta(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str, limit: int) -> str:
    return truncate(" ".join(text.split()), limit)
