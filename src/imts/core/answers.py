"""Answer extraction and numeric exact match (English and Chinese answers).

Normalisation: thousands separators, decimals, fractions (``3/4``, ``三分之一``, ``two thirds``),
percentages (``25%``, ``百分之二十五`` match 25 and 0.25), currency and unit words around the number
(``$16``, ``16 dollars``, ``16元``, ``16 个``) and numbers in words (``twenty-five``, ``三百二十五``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from imts.core.numbers import EN_NUMBER, ZH_NUMBER, parse_chinese, parse_english

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
    if numbers:
        return _clean(numbers[-1])
    worded = [m.group(0) for m in (*EN_NUMBER.finditer(text), *ZH_NUMBER.finditer(text))]
    for words in reversed(worded):  # no digits at all: the last number written in words
        value = parse_value(words)
        if value is not None:
            return _fraction_text(value.value) + ("%" if value.percent else "")
    return None


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _clean(num: str) -> str:
    return num.replace(",", "").rstrip(".")


def to_fraction(num: str) -> Fraction | None:
    try:
        return Fraction(num.replace(",", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class Value:
    """A normalised numeric answer; ``percent`` when it was written as a percentage."""

    value: Fraction
    percent: bool = False


# Currency signs and unit words that may surround a bare answer ("$16", "16 dollars", "16元", "16 个").
_PREFIX = re.compile(r"^[\s$¥€£]+")
_SUFFIX = re.compile(
    r"[\s.。]*(?:dollars?|cents?|yuan|units?|items?|apples?|people|students|books|pieces|meters?|km|kg|g|cm|m|"
    r"hours?|minutes?|days?|years?|元|块|个|支|本|人|只|米|千克|公斤|克|天|小时|分钟|岁|件|张)?[\s.。]*$",
    re.IGNORECASE,
)


def parse_value(text: str) -> Value | None:
    """The number an answer string denotes, or None when it is not (only) a number."""
    core = _SUFFIX.sub("", _PREFIX.sub("", text.strip()), count=1).strip()
    if not core:
        return None
    percent = core.endswith("%") or core.lower().endswith(" percent")
    core = re.sub(r"\s*(?:%|percent)$", "", core, flags=re.IGNORECASE)
    frac = to_fraction(core)
    if frac is not None:
        return Value(frac, percent)
    english = parse_english(core) if EN_NUMBER.fullmatch(core) else None
    if english is not None:
        return Value(english, percent)
    if ZH_NUMBER.fullmatch(core):
        chinese = parse_chinese(core)
        if chinese is not None:
            return Value(chinese[0], percent or chinese[1])
    return None


def numeric_match(predicted: str | None, reference: str) -> bool:
    """Exact match after numeric normalisation: ``16`` == ``16.0`` == ``32/2`` == ``sixteen`` == ``十六``;
    ``25%`` matches 25 and 0.25; text that is no number compares verbatim (case and spaces aside)."""
    if predicted is None:
        return False
    a, b = parse_value(predicted), parse_value(reference)
    if a is not None and b is not None:
        if a.percent != b.percent:  # 25% against 0.25 or 25: either reading counts
            pct, plain = (a, b) if a.percent else (b, a)
            return plain.value in (pct.value, pct.value / 100)
        return a.value == b.value
    return " ".join(predicted.split()).lower() == " ".join(reference.split()).lower()


def reference_answer(row_answer: str | None, response: str) -> str:
    """The expected final answer: the ``answer`` field, else the number in the reference response."""
    if row_answer is not None and str(row_answer).strip():
        return str(row_answer).strip()
    extracted = extract_number(response)
    return extracted if extracted is not None else response.strip()
