"""Verified augmentation of a weak category: new items like its rows, with new values, until a target share.

The embedded generator works few-shot from the category's own reasoning rows. From a seed row it reads
the program its response computes (each step's operands are numbers of the question or results of earlier
steps), draws new values for the question's numbers (a divisor first, then a dividend that is a multiple
of it, so divisions stay exact; subtractions stay positive), recomputes the steps, writes the question and
response with the new values, and gives the people in it other names of the same kind. The question is
then re-worded: by the chat backend when one is configured, else by the embedded rules of
:mod:`imts.optimise.reword` (question first, framing, safe word swaps, context; every number kept).
Every candidate then passes the sandbox verifier (:mod:`imts.optimise.verify`), is deduplicated against
the data and the items accepted before it, and is decontaminated against the validation and test splits
(exact question or a shared 13-gram); each rejection is counted with its reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from imts.agents.chat import ChatBackend
from imts.agents.judges.math import extract_steps
from imts.core.text import ngrams, normalise, tokens
from imts.optimise.cot import assistant_text, prompt_numbers, user_text
from imts.optimise.pii.lexicon import EN_FIRST, EN_FIRST_FEMALE
from imts.optimise.reword import reword
from imts.optimise.verify import verify

_NUM = re.compile(r"(?<![\d.])\d{1,6}(?:\.\d+)?(?!\.?\d)")
_OPERAND = re.compile(r"\d+(?:\.\d+)?|[-+*/×÷]")
NGRAM = 13
BATCH = 48


@dataclass(frozen=True)
class Program:
    """A seed row's computation: steps of (operand, op, operand); an operand is ("p", i) for the i-th
    number of the question or ("s", k) for the result of step k."""

    seed: dict[str, Any]
    numbers: list[Fraction]
    steps: list[tuple[tuple[str, int], str, tuple[str, int]]]


def program_of(row: dict[str, Any]) -> Program | None:
    """The program of a reasoning row, or None when its numbers cannot be told apart unambiguously."""
    numbers = prompt_numbers(user_text(row))
    steps = extract_steps(assistant_text(row))
    if not steps or len(set(numbers)) != len(numbers):
        return None
    results: list[Fraction] = []
    prog = []
    for step in steps:
        parts = _OPERAND.findall(step.expression)
        if len(parts) != 3:
            return None
        operands = []
        for text in (parts[0], parts[2]):
            v = Fraction(text)
            roles = [("p", i) for i, n in enumerate(numbers) if n == v] + [
                ("s", k) for k, r in enumerate(results) if r == v
            ]
            if len(roles) != 1:
                return None
            operands.append(roles[0])
        results.append(Fraction(step.claimed.replace(",", "")))
        prog.append((operands[0], parts[1].replace("×", "*").replace("÷", "/"), operands[1]))
    if len(set(results)) != len(results) or set(results) & set(numbers):
        return None  # 64 / 8 = 8: which 8 is which could not be told apart when writing new values
    mentioned = {Fraction(m.group(0)) for m in _NUM.finditer(assistant_text(row))}
    if not mentioned <= set(numbers) | set(results) | {Fraction(row.get("answer") or "0")}:
        return None  # the response mentions numbers the program does not explain
    return Program(row, numbers, prog)


def _draw(original: Fraction, rng: random.Random) -> Fraction:
    n = int(original)
    lo, hi = (2, 12) if n <= 12 else (max(2, n // 2), max(n * 2, 20))
    return Fraction(rng.randint(lo, hi))


def run_program(prog: Program, rng: random.Random) -> tuple[list[Fraction], list[Fraction]] | None:
    """New question numbers and step results, or None if the draw broke a rule (tried again)."""
    values: list[Fraction | None] = [None] * len(prog.numbers)
    results: list[Fraction] = []

    def value(ref: tuple[str, int]) -> Fraction:
        if ref[0] == "s":
            return results[ref[1]]
        if values[ref[1]] is None:
            values[ref[1]] = _draw(prog.numbers[ref[1]], rng)
        got = values[ref[1]]
        assert got is not None
        return got

    for left, op, right in prog.steps:
        if op == "/" and left[0] == "p" and values[left[1]] is None:
            divisor = value(right)
            orig_q = max(
                2, int(prog.numbers[left[1]] / max(1, prog.numbers[right[1]] if right[0] == "p" else 1))
            )
            values[left[1]] = divisor * rng.randint(2, max(3, min(orig_q * 2, 60)))
        a, b = value(left), value(right)
        r = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else Fraction(-1)}[op]
        if r <= 0 or r.denominator != 1:
            return None
        results.append(r)
    return [v if v is not None else prog.numbers[i] for i, v in enumerate(values)], results


def _replace_numbers(text: str, mapping: dict[Fraction, Fraction]) -> str:
    return _NUM.sub(lambda m: _fmt(mapping.get(Fraction(m.group(0)), Fraction(m.group(0)))), text)


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else str(float(v))


def _rename(text: str, rng: random.Random, names: dict[str, str]) -> str:
    """English first names become other first names of the same gender, consistently in one item."""
    pool_f = sorted(EN_FIRST_FEMALE)
    pool_m = sorted(EN_FIRST - EN_FIRST_FEMALE)

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        if word not in EN_FIRST:
            return word
        if word not in names:
            names[word] = rng.choice(pool_f if word in EN_FIRST_FEMALE else pool_m)
        return names[word]

    return re.sub(r"\b[A-Z][a-z]+\b", swap, text)


def generate(prog: Program, rng: random.Random, item_id: str) -> dict[str, Any] | None:
    """One candidate item from a seed's program."""
    for _ in range(30):
        drawn = run_program(prog, rng)
        if drawn is not None:
            break
    else:
        return None
    numbers, results = drawn
    old_results = _old_results(prog)
    mapping = dict(zip(prog.numbers, numbers, strict=True)) | dict(zip(old_results, results, strict=True))
    seed = prog.seed
    names: dict[str, str] = {}
    question = _rename(_replace_numbers(user_text(seed), mapping), rng, names)
    response = _rename(_replace_numbers(assistant_text(seed), mapping), rng, names)
    meta = {"operation": "augment", "seed_row": seed["id"], "generator": "embedded"}
    return {
        "id": item_id,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": response}],
        "category": seed.get("category"),
        "lang": seed.get("lang"),
        "answer": _fmt(results[-1]),
        "meta": json.dumps(meta, ensure_ascii=False),
    }


def _old_results(prog: Program) -> list[Fraction]:
    return [Fraction(s.claimed.replace(",", "")) for s in extract_steps(assistant_text(prog.seed))]


def needed(count: int, total: int, share: float) -> int:
    """Items to add so that ``count`` of ``total`` reaches ``share``: (count + k) / (total + k) >= share."""
    if share >= 1 or count >= share * total:
        return 0
    k = (share * total - count) / (1 - share)
    return int(k) + (0 if k == int(k) else 1)


@dataclass
class AugmentState:
    """Where an augmentation stands (saved after each verified batch: a killed job resumes here)."""

    next_index: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    tried: int = 0


class Guard:
    """Duplicates and contamination: exact questions and 13-grams of the validation and test questions."""

    def __init__(self, rows: list[dict[str, Any]], held_out: list[dict[str, Any]]) -> None:
        self.seen = {normalise(user_text(r)) for r in rows}
        self.held_exact = {normalise(user_text(r)) for r in held_out}
        self.held_grams: set[tuple[str, ...]] = set()
        for r in held_out:
            self.held_grams |= ngrams(tokens(user_text(r)), NGRAM)

    def reason(self, row: dict[str, Any]) -> str | None:
        q = user_text(row)
        key = normalise(q)
        if key in self.held_exact or ngrams(tokens(q), NGRAM) & self.held_grams:
            return "contaminated: overlaps the validation/test split / 与验证集/测试集重叠"
        if key in self.seen:
            return "duplicate of an existing item / 与已有条目重复"
        return None


def augment_category(
    category: str,
    seeds: list[dict[str, Any]],
    want: int,
    guard: Guard,
    seed: int,
    state: AugmentState,
    checkpoint: Any = None,
    paraphraser: ChatBackend | None = None,
    max_tries_per_item: int = 6,
) -> AugmentState:
    """Generate verified items of ``category`` until ``want`` are accepted (or the tries run out)."""
    programs = [p for r in seeds if (p := program_of(r)) is not None]
    if not programs:
        state.rejected["no usable seed row / 没有可用的种子条目"] = want
        return state
    for row in state.accepted:
        guard.seen.add(normalise(user_text(row)))
    limit = want * max_tries_per_item
    while len(state.accepted) < want and state.next_index < limit:
        batch = []
        for i in range(state.next_index, min(state.next_index + BATCH, limit)):
            prog = programs[i % len(programs)]
            digest = hashlib.sha256(f"{seed}:{category}:{i}".encode()).hexdigest()
            rng = random.Random(int(digest[:16], 16))
            item = generate(prog, rng, f"aug-{category}-{digest[:10]}")
            if item is not None and paraphraser is not None:
                item = _paraphrase(item, paraphraser)
            elif item is not None:  # the embedded teacher's new wording (rules; optimise/reword.py)
                new = reword(user_text(item), str(item.get("lang") or "en"), rng)
                item = {**item, "messages": [{"role": "user", "content": new}, item["messages"][1]]}
            batch.append(item)
        state.next_index += len(batch)
        verdicts = verify(
            [(r["id"], user_text(r), assistant_text(r), r["answer"]) for r in batch if r is not None]
        )
        it = iter(verdicts)
        for item in batch:
            if len(state.accepted) >= want:
                break  # the rest of the batch is never looked at: not tried, not rejected
            state.tried += 1
            if item is None:
                _count(state.rejected, "no valid values drawn / 未抽到合法数值")
                continue
            verdict = next(it)
            why = None if verdict.ok else f"verifier: {verdict.reason}"
            why = why or guard.reason(item)
            if why is not None:
                _count(state.rejected, why.split(" (")[0][:80] if why.startswith("verifier") else why)
                continue
            guard.seen.add(normalise(user_text(item)))
            state.accepted.append(item)
        if checkpoint is not None:
            checkpoint(state)
    return state


def _count(counter: dict[str, int], reason: str) -> None:
    counter[reason] = counter.get(reason, 0) + 1


def _paraphrase(item: dict[str, Any], backend: ChatBackend) -> dict[str, Any]:
    """The question re-worded by the chat model; kept only if it holds exactly the same numbers."""
    q = user_text(item)
    ask = (
        "把下面的题目换一种说法，数字和意思都不变，只输出新题目：\n"
        if item.get("lang") == "zh"
        else "Re-word this problem, keeping every number and its meaning; output only the new problem:\n"
    )
    new = backend.chat([{"role": "user", "content": ask + q}], max_tokens=160).text.strip()
    if new and Counter(_NUM.findall(new)) == Counter(_NUM.findall(q)):
        messages = [{"role": "user", "content": new}, item["messages"][1]]
        return {**item, "messages": messages}
    return item
