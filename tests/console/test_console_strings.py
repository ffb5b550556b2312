"""The console's string table (``i18n.js``) has every string the pages ask for, in English and Chinese:
each literal ``t("key")`` of every page, and the keys the pages build from the API's enumerations
(finding kinds, severities, actions, loop phases and statuses, verdicts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imts.analysis.findings import Action, FindingKind, Severity
from imts.flywheel.machine import Phase, Status

CONSOLE = Path(__file__).parents[2] / "src" / "imts" / "api" / "console"
ENTRY = re.compile(r'(\w+): \["((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\]')


def _strings() -> dict[str, tuple[str, str]]:
    text = (CONSOLE / "i18n.js").read_text(encoding="utf-8")
    found: dict[str, tuple[str, str]] = {}
    for m in ENTRY.finditer(text):
        assert m.group(1) not in found, f"i18n.js: {m.group(1)} is defined twice"
        found[m.group(1)] = (m.group(2), m.group(3))
    return found


def test_every_literal_key_of_every_page_has_both_languages() -> None:
    strings = _strings()
    assert len(strings) > 300
    for source in [CONSOLE / "app.js", *sorted((CONSOLE / "pages").glob("*.js"))]:
        text = source.read_text(encoding="utf-8")
        for key in re.findall(r'\bt\("(\w+)"[,)]', text):
            assert key in strings, f"{source.name}: t({key!r}) is not in i18n.js"
            en, zh = strings[key]
            assert en.strip() and zh.strip(), f"i18n.js: {key} lacks a language"


@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("kind_", [k.value for k in FindingKind]),
        ("sev_", [s.value for s in Severity]),
        ("act_", [a.value for a in Action]),
        ("phase_", [p.value for p in Phase]),
        ("loop_", [s.value for s in Status]),
        ("verdict_", ["fits", "partial", "refused"]),
        ("review_status_", ["pending", "accepted", "rejected"]),
        ("review_kind_", ["generated", "rewritten"]),
        ("sub_", ["diversity", "balance", "correctness", "reasoning", "privacy"]),
        (
            "page_",
            [
                "overview",
                "launch",
                "monitor",
                "datasets",
                "insights",
                "review",
                "evaluation",
                "models",
                "loop",
                "admin",
            ],
        ),
    ],
)
def test_keys_built_from_the_apis_values_exist(prefix: str, values: list[str]) -> None:
    strings = _strings()
    missing = [prefix + v for v in values if prefix + v not in strings]
    assert not missing, f"i18n.js lacks {missing}"
