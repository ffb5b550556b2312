"""Typed findings: the contract between the dataset analysis, the data optimisation and the closed loop.

A finding says what is wrong (``kind``), where (``row_ids``, a few ``examples``), how bad (``severity``,
``share``), and which action could fix it (``action`` with its ``params``). Messages come in English and
Chinese so every consumer (CLI, report, console, loop log) shows the user's language.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class FindingKind(StrEnum):
    OFF_INTENT = "off_intent"  # the data does not serve the intent (fit check)
    UNDER_REPRESENTED = "under_represented"  # a category / cluster far below its expected share
    COVERAGE_GAP = "coverage_gap"  # an expected sub-skill with (almost) no rows
    ANSWER_ONLY = "answer_only"  # the response is just the answer: low information for reasoning tasks
    DUPLICATE = "duplicate"  # exact duplicates
    NEAR_DUPLICATE = "near_duplicate"
    PERSONAL_DATA = "personal_data"  # names, phone numbers, ID numbers ...
    LEAKAGE = "leakage"  # rows shared between splits or with a registered evaluation set
    FORMAT = "format"  # missing / empty fields, unparsable rows, wrong answer form
    LENGTH = "length"  # rows longer than the model's context, or degenerate (too short)
    LANGUAGE = "language"  # languages the intent does not ask for


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    SEVERE = "severe"


class Action(StrEnum):
    """What could fix a finding; the data optimisation implements these, the loop chooses among them."""

    NONE = "none"
    DROP = "drop"  # remove the rows (duplicates, leaked or broken rows)
    AUGMENT = "augment"  # generate verified items like the rows of a weak category / cluster
    COT_REWRITE = "cot_rewrite"  # answer-only rows become question -> rationale -> answer
    PII_REPLACE = "pii_replace"  # consistent, format-valid synthetic replacement of personal data
    COLLECT = "collect"  # nothing automatic: the user must bring other data


class Finding(BaseModel):
    kind: FindingKind
    severity: Severity
    message_en: str
    message_zh: str
    row_ids: list[str] = Field(default_factory=list)  # every row behind the finding
    examples: list[dict[str, Any]] = Field(default_factory=list)  # a few of those rows, shortened
    share: float | None = None  # how much of the data it concerns (0..1), where that means something
    action: Action = Action.NONE
    params: dict[str, Any] = Field(default_factory=dict)  # {"category": "division", "target_share": 0.15}

    def message(self, lang: str) -> str:
        return self.message_zh if lang.startswith("zh") else self.message_en
