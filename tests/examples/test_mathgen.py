"""Tests for the example task's seeded data generator ``examples/mathgen.py``."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import itertools
import json
import operator
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MATHGEN_PATH = Path(__file__).parents[2] / "examples" / "mathgen.py"

TOKEN_RE = re.compile(r"[A-Za-z0-9]+|[\u3400-\u9fff]")
STEP_RE = re.compile(r"(\d+(?:\.\d+)?(?:\s*[-+*/]\s*\d+(?:\.\d+)?)+)\s*=\s*(\d+(?:\.\d+)?)")
EN_END_RE = re.compile(r"The answer is (\d+(?:\.\d+)?)\.$")
ZH_END_RE = re.compile(r"答案是(\d+(?:\.\d+)?)。$")
PHONE_RE = re.compile(r"(?<!\d)(?:\d{3}-)?\d{3}-\d{4}(?!\d)|(?<!\d)1[3-9]\d{9}(?!\d)")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+", re.ASCII)
CJK_RE = re.compile(r"[\u3400-\u9fff]")

CATEGORY_OPS = {"addition": "+", "subtraction": "-", "multiplication": "*", "division": "/"}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("imts_example_mathgen", MATHGEN_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mathgen() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def data(mathgen: ModuleType) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return mathgen.generate(n=3000, seed=0)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def safe_eval(expr: str) -> float:
    """Evaluate an arithmetic expression made only of numbers and + - * / (no names, no calls)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"disallowed syntax in {expr!r}: {ast.dump(node)}")

    return ev(ast.parse(expr, mode="eval").body)


def steps(response: str) -> list[tuple[str, str]]:
    return STEP_RE.findall(response)


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def dup_ids(manifest: dict[str, Any]) -> set[str]:
    return {d for d, _ in manifest["exact_duplicates"]} | {d for d, _ in manifest["near_duplicates"]}


def ngram_sharing_rate(rows: list[dict[str, Any]], manifest: dict[str, Any], n: int = 13) -> float:
    """Fraction of non-duplicate items sharing any n-gram (tokens: words/numbers, single CJK chars)
    with another non-duplicate item. An item is its prompt followed by its response."""
    skip = dup_ids(manifest)
    texts: list[str] = []
    seen: set[str] = set()
    for r in rows:
        text = r["prompt"] + "\n" + r["response"]
        if r["id"] in skip or text in seen:
            continue
        seen.add(text)
        texts.append(text)
    owners: dict[tuple[str, ...], set[int]] = defaultdict(set)
    for i, text in enumerate(texts):
        toks = tokens(text)
        for j in range(len(toks) - n + 1):
            owners[tuple(toks[j : j + n])].add(i)
    flagged: set[int] = set()
    for items in owners.values():
        if len(items) > 1:
            flagged |= items
    return len(flagged) / len(texts)


# --------------------------------------------------------------------------------------------------
# schema and determinism
# --------------------------------------------------------------------------------------------------


def test_schema(data: tuple[list[dict[str, Any]], dict[str, Any]], mathgen: ModuleType) -> None:
    rows, manifest = data
    assert len(rows) == 3000 == manifest["n"]
    assert manifest["seed"] == 0
    for i, r in enumerate(rows, start=1):
        assert list(r) == ["id", "prompt", "response", "answer", "category", "lang"]
        assert r["id"] == f"mwp-{i:06d}"
        assert r["category"] in mathgen.CATEGORIES
        assert r["lang"] in ("en", "zh")
        assert all(isinstance(r[k], str) and r[k] for k in r)
        assert re.fullmatch(r"\d+(?:\.\d+)?", r["answer"]), r
        assert "\n" not in r["prompt"] and "\n" not in r["response"]


def test_deterministic_for_a_seed(mathgen: ModuleType) -> None:
    a = mathgen.to_jsonl(mathgen.generate(n=600, seed=7)[0]).encode("utf-8")
    b = mathgen.to_jsonl(mathgen.generate(n=600, seed=7)[0]).encode("utf-8")
    c = mathgen.to_jsonl(mathgen.generate(n=600, seed=8)[0]).encode("utf-8")
    assert a == b
    assert a != c
    assert mathgen.generate(n=600, seed=7)[1] == mathgen.generate(n=600, seed=7)[1]


def test_small_and_edge_sizes(mathgen: ModuleType) -> None:
    assert mathgen.generate(n=0, seed=1) == (
        [],
        {
            "seed": 1,
            "n": 0,
            "zh_share": 0.3,
            "category_counts": dict.fromkeys(mathgen.CATEGORIES, 0),
            "lang_counts": {"en": 0, "zh": 0},
            "answer_only_ids": [],
            "exact_duplicates": [],
            "near_duplicates": [],
            "pii_ids": [],
        },
    )
    for n in (1, 2, 17, 50, 120):
        rows, manifest = mathgen.generate(n=n, seed=n)
        assert len(rows) == n == sum(manifest["category_counts"].values())
    en_only, _ = mathgen.generate(n=200, seed=3, zh_share=0.0)
    zh_only, _ = mathgen.generate(n=200, seed=3, zh_share=1.0)
    assert {r["lang"] for r in en_only} == {"en"}
    assert {r["lang"] for r in zh_only} == {"zh"}
    with pytest.raises(ValueError):
        mathgen.generate(n=10, zh_share=1.5)
    with pytest.raises(ValueError):
        mathgen.generate(n=-1)


def test_template_variety(mathgen: ModuleType) -> None:
    per_kind = Counter((t.category, t.lang) for t in mathgen.TEMPLATES)
    for category in mathgen.CATEGORIES:
        for lang in ("en", "zh"):
            assert per_kind[(category, lang)] >= 5, (category, lang)
    assert len({t.key for t in mathgen.TEMPLATES}) == len(mathgen.TEMPLATES)
    assert len(mathgen.EN_NAMES) >= 10 and len(mathgen.ZH_NAMES) >= 10
    assert len(mathgen.EN_OBJECTS) >= 10 and len(mathgen.ZH_OBJECTS) >= 10


# --------------------------------------------------------------------------------------------------
# arithmetic correctness
# --------------------------------------------------------------------------------------------------


def test_safe_eval_rejects_non_arithmetic() -> None:
    assert safe_eval("23 - 7") == 16
    assert safe_eval("84 / 7") == 12
    for bad in ("__import__('os')", "2 ** 8", "x + 1", "abs(-3)"):
        with pytest.raises(ValueError):
            safe_eval(bad)


def test_reasoning_steps_are_correct(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    answer_only = set(manifest["answer_only_ids"])
    checked = 0
    for r in rows:
        if r["id"] in answer_only:
            continue
        response = r["response"]
        end = (EN_END_RE if r["lang"] == "en" else ZH_END_RE).search(response)
        assert end is not None, response
        assert end.group(1) == r["answer"], r
        assert re.findall(r"\d+(?:\.\d+)?", response)[-1] == r["answer"]
        found = steps(response)
        assert found, response
        for lhs, rhs in found:
            assert safe_eval(lhs) == float(rhs), (lhs, rhs, r)
        assert found[-1][1] == r["answer"], r
        assert "×" not in response and "÷" not in response
        # the chain of steps is consistent: each step after the first starts from the previous result
        for (_, prev), (lhs, _) in itertools.pairwise(found):
            assert prev in re.findall(r"\d+", lhs), r
        if r["category"] == "multi_step":
            assert len(found) == 2, r
        else:
            assert len(found) == 1, r
            assert CATEGORY_OPS[r["category"]] in found[0][0], r
        checked += 1
    assert checked > 2000


def test_operand_ranges(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    answer_only = set(manifest["answer_only_ids"])
    for r in rows:
        assert int(r["answer"]) >= 0
        if r["id"] in answer_only:
            continue
        for lhs, rhs in steps(r["response"]):
            a, op, b = re.fullmatch(r"(\d+) ([-+*/]) (\d+)", lhs).groups()  # type: ignore[union-attr]
            x, y, z = int(a), int(b), int(rhs)
            assert z >= 0
            if r["category"] in ("addition", "subtraction"):
                assert 10 <= x <= 99 and 10 <= y <= 99, r
            elif r["category"] == "multiplication":
                assert sorted((x, y))[0] in range(2, 10) and sorted((x, y))[1] in range(10, 100), r
            elif r["category"] == "division":
                assert 2 <= y <= 9 and 2 <= z <= 20 and x == y * z, r
            else:
                assert op in "+-*"


# --------------------------------------------------------------------------------------------------
# mix and planted defects
# --------------------------------------------------------------------------------------------------


def test_category_shares(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    counts = Counter(r["category"] for r in rows)
    assert manifest["category_counts"] == {c: counts[c] for c in manifest["category_counts"]}
    n = len(rows)
    assert 0.01 <= counts["division"] / n <= 0.035
    big = [counts["addition"], counts["subtraction"], counts["multiplication"]]
    assert all(0.22 <= c / n <= 0.32 for c in big)
    assert max(big) / min(big) < 1.15
    assert 0.12 <= counts["multi_step"] / n < min(big) / n


def test_languages(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    langs = Counter(r["lang"] for r in rows)
    assert manifest["lang_counts"] == dict(langs)
    assert 0.27 <= langs["zh"] / len(rows) <= 0.33
    for r in rows:
        has_cjk = bool(CJK_RE.search(r["prompt"]))
        assert has_cjk == (r["lang"] == "zh"), r
    for category in ("addition", "subtraction", "multiplication", "multi_step"):
        assert {r["lang"] for r in rows if r["category"] == category} == {"en", "zh"}


def test_answer_only_rows(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    ids = [r["id"] for r in rows if r["response"] == r["answer"]]
    assert manifest["answer_only_ids"] == ids
    assert 0.12 <= len(ids) / len(rows) <= 0.18
    by_id = {r["id"]: r for r in rows}
    for i in ids:
        assert re.fullmatch(r"\d+(?:\.\d+)?", by_id[i]["response"])


def test_exact_duplicates(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    by_id = {r["id"]: r for r in rows}
    pairs = manifest["exact_duplicates"]
    assert 0.02 <= len(pairs) / len(rows) <= 0.04
    for dup, orig in pairs:
        assert orig < dup  # the original comes earlier
        a, b = by_id[dup], by_id[orig]
        assert {k: v for k, v in a.items() if k != "id"} == {k: v for k, v in b.items() if k != "id"}
    # the listed pairs are the only exact duplicates in the data
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        groups[(r["prompt"], r["response"])].append(r["id"])
    listed = {dup: orig for dup, orig in pairs}
    for ids in groups.values():
        for dup in ids[1:]:
            assert listed.get(dup) == ids[0]
    assert sum(len(ids) - 1 for ids in groups.values()) == len(pairs)


def test_near_duplicates(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    by_id = {r["id"]: r for r in rows}
    pairs = manifest["near_duplicates"]
    assert 0.02 <= len(pairs) / len(rows) <= 0.04
    prompts = Counter(r["prompt"] for r in rows)
    for dup, orig in pairs:
        assert orig < dup
        a, b = by_id[dup], by_id[orig]
        assert a["prompt"] != b["prompt"]
        assert prompts[a["prompt"]] == 1  # a re-wording, not a copy of something else
        assert (a["answer"], a["response"], a["category"], a["lang"]) == (
            b["answer"],
            b["response"],
            b["category"],
            b["lang"],
        )
        assert re.findall(r"\d+", a["prompt"]) == re.findall(r"\d+", b["prompt"])  # same numbers
        # only slightly re-worded
        assert difflib.SequenceMatcher(None, a["prompt"], b["prompt"]).ratio() >= 0.75, (a, b)


def test_pii_rows(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    pii = set(manifest["pii_ids"])
    assert 0.005 <= len(pii) / len(rows) <= 0.015
    for r in rows:
        has_contact = bool(PHONE_RE.search(r["prompt"])) or bool(EMAIL_RE.search(r["prompt"]))
        assert has_contact == (r["id"] in pii), r
        assert not PHONE_RE.search(r["response"]) and not EMAIL_RE.search(r["response"])
        if r["id"] in pii:
            assert PHONE_RE.search(r["prompt"]), r
    pii_rows = [r for r in rows if r["id"] in pii]
    assert any(re.search(r"\d{3}-555-\d{4}", r["prompt"]) for r in pii_rows)  # US style
    assert any(re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", r["prompt"]) for r in pii_rows)  # Chinese mobile
    assert any(EMAIL_RE.search(r["prompt"]) for r in pii_rows)
    # PII rows are never the originals of planted duplicates
    originals = {o for _, o in manifest["exact_duplicates"]} | {o for _, o in manifest["near_duplicates"]}
    assert not originals & pii


# --------------------------------------------------------------------------------------------------
# variety: 13-gram overlap between different items
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_13gram_sharing_is_rare(mathgen: ModuleType, seed: int) -> None:
    rows, manifest = mathgen.generate(n=3000, seed=seed)
    rate = ngram_sharing_rate(rows, manifest)
    print(f"13-gram sharing rate (seed={seed}): {rate:.2%}")
    assert rate < 0.05


def test_number_free_stretches_are_short(data: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    rows, manifest = data
    skip = dup_ids(manifest) | set(manifest["pii_ids"])
    for r in rows:
        if r["id"] in skip:
            continue
        run = 0
        for tok in tokens(r["prompt"] + "\n" + r["response"]):
            run = 0 if tok.isdigit() else run + 1
            assert run < 10, r


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def test_cli_writes_jsonl(mathgen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "data.jsonl"
    man = tmp_path / "manifest.json"
    assert mathgen.main(["--n", "300", "--seed", "5", "--out", str(out), "--manifest", str(man)]) == 0
    summary = capsys.readouterr().out.strip()
    assert "\n" not in summary and "rows=300" in summary and "division=" in summary and "pii=" in summary
    raw = out.read_bytes()
    rows, manifest = mathgen.generate(n=300, seed=5)
    assert raw == mathgen.to_jsonl(rows).encode("utf-8")
    lines = raw.decode("utf-8").splitlines()
    assert len(lines) == 300
    parsed = [json.loads(line) for line in lines]
    assert parsed == rows
    assert any(CJK_RE.search(line) for line in lines)  # ensure_ascii=False: CJK kept verbatim
    assert json.loads(man.read_text(encoding="utf-8")) == manifest


def test_cli_as_script(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    proc = subprocess.run(
        [sys.executable, str(MATHGEN_PATH), "--n", "100", "--seed", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "rows=100" in proc.stdout
    assert len(out.read_text(encoding="utf-8").splitlines()) == 100
