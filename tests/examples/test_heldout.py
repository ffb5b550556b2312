"""Checks of the hand-written held-out sets: ``examples/heldout/math_oot.jsonl`` (out-of-template math)
and ``src/imts/flywheel/data/general_probe.jsonl`` (the general-ability preference probe IMTS ships).

Every failure names the file, the line and the field. The OOT set must also stay independent of the
example generator: no prompt may share a run of 8 tokens with 3,000 generated prompts.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from imts.agents.judges.math import extract_steps
from imts.core.text import detect_lang, ngrams, tokens
from imts.data.service import import_file
from imts.store.context import Context

ROOT = Path(__file__).resolve().parents[2]
OOT = ROOT / "examples" / "heldout" / "math_oot.jsonl"
PROBE = ROOT / "src" / "imts" / "flywheel" / "data" / "general_probe.jsonl"

CATEGORIES = ("addition", "subtraction", "multiplication", "division", "multi_step")
CATEGORY_OPS = {"addition": "+", "subtraction": "-", "multiplication": "*", "division": "/"}
PROBE_CATEGORIES = ("facts", "language", "commonsense", "science", "instructions")
OOT_KEYS = ["id", "prompt", "response", "answer", "category", "lang", "expr"]
PROBE_KEYS = ["id", "prompt", "chosen", "rejected", "category", "lang"]
END = {"en": re.compile(r" The answer is (\d+)\.$"), "zh": re.compile(r"答案是(\d+)。$")}
NUMBER = re.compile(r"\d+")
# A shared run this long would mean a sentence lifted from a template (numbers count as tokens).
MAX_SHARED_RUN = 8

Row = tuple[int, dict[str, Any]]  # (line number, row)


def load(path: Path, keys: list[str]) -> list[Row]:
    """The rows of a JSONL file with their line numbers; every row must have exactly ``keys`` as text."""
    rows: list[Row] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.name}:{line_no}"
        assert line.strip(), f"{where}: empty line"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{where}: not JSON ({exc})") from None
        assert isinstance(row, dict), f"{where}: expected an object"
        assert list(row) == keys, f"{where}: fields {list(row)}, expected {keys}"
        for key in keys:
            assert isinstance(row[key], str) and row[key].strip(), f"{where} field '{key}': empty or not text"
            assert "\n" not in row[key], f"{where} field '{key}': holds a line break"
        rows.append((line_no, row))
    return rows


_BINOPS: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def safe_eval(expr: str) -> Fraction:
    """Exact value of an expression of non-negative integers, + - * / and parentheses; nothing else."""

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"disallowed syntax in {expr!r}: {ast.dump(node)}")

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an expression: {expr!r} ({exc.msg})") from None
    return ev(tree.body)


def shared_run(prompts: list[list[str]], others: list[list[str]]) -> tuple[int, str]:
    """The longest token run any of ``prompts`` shares with any of ``others``, and one such run."""
    longest, example = 0, ""
    n = 1
    while True:
        theirs: set[tuple[str, ...]] = set()
        for toks in others:
            theirs |= ngrams(toks, n)
        common = next((g for toks in prompts for g in ngrams(toks, n) if g in theirs), None)
        if common is None:
            return longest, example
        longest, example = n, " ".join(common)
        n += 1


@pytest.fixture(scope="module")
def oot() -> list[Row]:
    return load(OOT, OOT_KEYS)


@pytest.fixture(scope="module")
def probe() -> list[Row]:
    return load(PROBE, PROBE_KEYS)


# --------------------------------------------------------------------------------------------------
# out-of-template math
# --------------------------------------------------------------------------------------------------


def test_safe_eval_takes_arithmetic_only() -> None:
    assert safe_eval("(3 + 2) * 14") == 70
    assert safe_eval("126 / 7") == 18
    assert safe_eval("7 / 2") == Fraction(7, 2)
    for bad in ("__import__('os')", "2 ** 8", "x + 1", "abs(3)", "-3 + 5", "1.5 * 2", "3 +"):
        with pytest.raises(ValueError):
            safe_eval(bad)


def test_oot_rows_are_well_formed(oot: list[Row]) -> None:
    ids = Counter(r["id"] for _, r in oot)
    assert not [i for i, c in ids.items() if c > 1], "duplicate ids"
    prompts = Counter(r["prompt"] for _, r in oot)
    assert not [p for p, c in prompts.items() if c > 1], "duplicate prompts"
    for line, r in oot:
        where = f"{OOT.name}:{line}"
        assert re.fullmatch(rf"oot-{r['lang']}-\d{{3}}", r["id"]), f"{where} field 'id': {r['id']}"
        assert r["lang"] in ("en", "zh"), f"{where} field 'lang': {r['lang']}"
        assert r["category"] in CATEGORIES, f"{where} field 'category': {r['category']}"
        assert detect_lang(r["prompt"]) == r["lang"], f"{where} field 'prompt': not {r['lang']}"
        value = safe_eval(r["expr"])
        assert value.denominator == 1 and value > 0, f"{where} field 'expr': {r['expr']} = {value}"
        assert r["answer"] == str(value), f"{where} field 'answer': {r['answer']} != {r['expr']} = {value}"


def test_oot_responses_end_with_the_answer_and_their_steps_recompute(oot: list[Row]) -> None:
    for line, r in oot:
        where = f"{OOT.name}:{line} field 'response'"
        response = r["response"]
        end = END[r["lang"]].search(response)
        assert end is not None, f"{where}: does not end with the answer sentence: {response}"
        assert end.group(1) == r["answer"], f"{where}: ends with {end.group(1)}, answer is {r['answer']}"
        steps = extract_steps(response)
        assert steps, f"{where}: no 'a op b = c' step"
        # every operand is a number of the expression or the result of an earlier step
        known = set(NUMBER.findall(r["expr"]))
        for step in steps:
            assert safe_eval(step.expression) == safe_eval(step.claimed), f"{where}: wrong step {step.text}"
            unknown = set(NUMBER.findall(step.expression)) - known
            assert not unknown, f"{where}: step {step.text} uses {unknown}, not in expr {r['expr']}"
            known.add(step.claimed)
        assert steps[-1].claimed == r["answer"], f"{where}: the last step gives {steps[-1].claimed}"
        if r["category"] == "multi_step":
            assert 2 <= len(steps) <= 3, f"{where}: {len(steps)} steps in a multi_step item"
            earlier = {s.claimed for s in steps[:-1]}
            assert earlier & set(NUMBER.findall(steps[-1].expression)), f"{where}: last step is unchained"
        else:
            assert len(steps) == 1, f"{where}: {len(steps)} steps in a {r['category']} item"
            op = CATEGORY_OPS[r["category"]]
            assert steps[0].expression == r["expr"], f"{where}: step {steps[0].text} is not expr {r['expr']}"
            assert re.fullmatch(rf"\d+ \{op} \d+", r["expr"]), f"{OOT.name}:{line} field 'expr': not one {op}"


def test_oot_is_grade_school_arithmetic(oot: list[Row]) -> None:
    """Operands like the generator's (two-digit sums, one-digit factors and divisors), results <= 1,000."""
    for line, r in oot:
        where = f"{OOT.name}:{line} field 'expr'"
        numbers = [int(x) for x in NUMBER.findall(r["expr"])]
        assert all(2 <= x <= 200 for x in numbers), f"{where}: operand out of range in {r['expr']}"
        if r["category"] in ("addition", "subtraction"):
            assert all(10 <= x <= 99 for x in numbers), f"{where}: {r['expr']}"
        elif r["category"] == "multiplication":
            small, big = sorted(numbers)
            assert 2 <= small <= 9 and 10 <= big <= 99, f"{where}: {r['expr']}"
        elif r["category"] == "division":
            dividend, divisor = numbers
            assert 2 <= divisor <= 9 and 2 <= dividend // divisor <= 20, f"{where}: {r['expr']}"
        for step in extract_steps(r["response"]):
            assert 0 < safe_eval(step.expression) <= 1000, f"{where}: step {step.text}"


def test_oot_balance(oot: list[Row]) -> None:
    rows = [r for _, r in oot]
    assert len(rows) >= 200
    langs = Counter(r["lang"] for r in rows)
    assert 0.45 <= langs["zh"] / len(rows) <= 0.55, langs
    cats = Counter(r["category"] for r in rows)
    assert set(cats) == set(CATEGORIES), cats
    assert cats["division"] >= 30 and cats["multi_step"] >= 30, cats
    per = Counter((r["category"], r["lang"]) for r in rows)
    assert all(per[(c, lang)] >= 15 for c in CATEGORIES for lang in ("en", "zh")), per
    # about one item in ten carries a number the solution does not use (a date, a grade, a room number)
    distractors = [r for r in rows if set(NUMBER.findall(r["prompt"])) - set(NUMBER.findall(r["expr"]))]
    assert 0.07 <= len(distractors) / len(rows) <= 0.15, len(distractors)
    # some items open with a number
    assert sum(bool(re.match(r"\d", r["prompt"])) for r in rows) >= 6


def test_oot_is_not_template_text(oot: list[Row], mathgen: ModuleType) -> None:
    generated, _ = mathgen.generate(n=3000, seed=0)
    theirs = [tokens(r["prompt"]) for r in generated]
    ours = [tokens(r["prompt"]) for _, r in oot]
    longest, example = shared_run(ours, theirs)
    print(f"longest token run shared with 3,000 generated prompts: {longest} ({example!r})")
    assert longest < MAX_SHARED_RUN, f"an OOT prompt shares {longest} tokens with a template: {example!r}"


def test_shared_run_finds_a_lifted_sentence() -> None:
    lifted = tokens("Ella has 37 cupcakes and gives away 13 of them to friends")
    assert shared_run([lifted], [tokens("so Ella has 37 cupcakes and gives away 13 of them")])[0] == 10
    assert shared_run([tokens("完全不同的句子")], [tokens("abc def")]) == (0, "")


# --------------------------------------------------------------------------------------------------
# general-ability probe
# --------------------------------------------------------------------------------------------------


def test_probe_rows_are_well_formed(probe: list[Row]) -> None:
    ids = Counter(r["id"] for _, r in probe)
    assert not [i for i, c in ids.items() if c > 1], "duplicate ids"
    for line, r in probe:
        where = f"{PROBE.name}:{line}"
        assert re.fullmatch(rf"gp-{r['lang']}-\d{{3}}", r["id"]), f"{where} field 'id': {r['id']}"
        assert r["lang"] in ("en", "zh"), f"{where} field 'lang': {r['lang']}"
        assert r["category"] in PROBE_CATEGORIES, f"{where} field 'category': {r['category']}"
        assert detect_lang(r["prompt"]) == r["lang"], f"{where} field 'prompt': not {r['lang']}"
        assert r["chosen"] != r["rejected"], f"{where} field 'rejected': same as chosen"
        ratio = len(r["chosen"]) / len(r["rejected"])
        assert 0.5 <= ratio <= 2, f"{where} field 'rejected': length ratio {ratio:.2f} (length would decide)"
        # outside the task: no arithmetic and no answer sentence of the math set
        for key in ("prompt", "chosen", "rejected"):
            text = r[key]
            assert not re.search(r"\d+\s*[-+*/×÷]\s*\d+", text), f"{where} field '{key}': arithmetic"
            assert "answer is" not in text and "答案是" not in text, f"{where} field '{key}': math answer"


def test_probe_balance(probe: list[Row]) -> None:
    rows = [r for _, r in probe]
    assert len(rows) >= 160
    langs = Counter(r["lang"] for r in rows)
    assert langs["en"] == langs["zh"], langs
    per = Counter((r["category"], r["lang"]) for r in rows)
    assert all(per[(c, lang)] >= 12 for c in PROBE_CATEGORIES for lang in ("en", "zh")), per
    assert len({r["prompt"] for r in rows}) == len(rows), "duplicate prompts"


# --------------------------------------------------------------------------------------------------
# both import as the formats the evaluation reads
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name", "fmt"), [(OOT, "math-oot", "sft"), (PROBE, "general-probe", "preference")]
)
def test_imports_cleanly(ws: Context, path: Path, name: str, fmt: str) -> None:
    info = import_file(ws, path, name)
    assert info.ref == f"{name}@1"
    assert info.format == fmt
    assert info.num_rows == len(path.read_text(encoding="utf-8").splitlines())
