"""Answer extraction and numeric exact match (English and Chinese answers)."""

from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
# "The answer is 16", "answer: 16", "答案是16", "答案：16", "#### 16" — the last such marker wins.
_MARKED = re.compile(
    rf"(?:answer\s*(?:is|:|=)\s*\$?\s*|答案\s*(?:是|为|：|:)?\s*|####\s*)(?P<num>{_NUM})", re.IGNORECASE
)
_ANY = re.compile(_NUM)


def extract_number(text: str) -> str | None:
    """The final numeric answer of a model's text: the last marked answer, else the last number."""
    marked = list(_MARKED.finditer(text))
    if marked:
        return _clean(marked[-1].group("num"))
    numbers = _ANY.findall(text)
    return _clean(numbers[-1]) if numbers else None


def _clean(num: str) -> str:
    return num.replace(",", "").rstrip(".")


def to_fraction(num: str) -> Fraction | None:
    try:
        return Fraction(num.replace(",", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


def numeric_match(predicted: str | None, reference: str) -> bool:
    """Exact match after numeric normalisation: ``16`` == ``16.0`` == ``32/2``; text compares verbatim."""
    if predicted is None:
        return False
    a, b = to_fraction(predicted), to_fraction(reference)
    if a is not None and b is not None:
        return a == b
    return predicted.strip() == reference.strip()


def reference_answer(row_answer: str | None, response: str) -> str:
    """The expected final answer: the ``answer`` field, else the number in the reference response."""
    if row_answer is not None and str(row_answer).strip():
        return str(row_answer).strip()
    extracted = extract_number(response)
    return extracted if extracted is not None else response.strip()
