"""Before/after comparison report of the evaluation step, split by concern.

After a fine-tuning run IMTS evaluates the baseline model and the tuned model on the same items and shows
what changed: :mod:`.model` (what a report holds, and the diff), :mod:`.markdown` (a terminal summary),
:mod:`.html` with :mod:`.figures` and ``templates/`` (a self-contained offline page), :mod:`.jsonio`
(``report.json``), :mod:`.write` (the three files, atomically) and :mod:`.i18n` (English and Chinese).
"""

from imts.evals.report.figures import BASELINE_COLOR, TUNED_COLOR
from imts.evals.report.html import render_body, render_html
from imts.evals.report.i18n import LANGS, Lang
from imts.evals.report.jsonio import JSON_SCHEMA_VERSION, report_from_dict, report_to_dict
from imts.evals.report.markdown import render_markdown
from imts.evals.report.model import (
    Cluster,
    ComparisonReport,
    EvalResult,
    ItemOutcome,
    PairSignificance,
    ReportExtras,
    TrainingCurves,
    accuracy_by_category,
    changed_items,
)
from imts.evals.report.write import write_report

__all__ = [
    "BASELINE_COLOR",
    "JSON_SCHEMA_VERSION",
    "LANGS",
    "TUNED_COLOR",
    "Cluster",
    "ComparisonReport",
    "EvalResult",
    "ItemOutcome",
    "Lang",
    "PairSignificance",
    "ReportExtras",
    "TrainingCurves",
    "accuracy_by_category",
    "changed_items",
    "render_body",
    "render_html",
    "render_markdown",
    "report_from_dict",
    "report_to_dict",
    "write_report",
]
