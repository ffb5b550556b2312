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

A category of multi-step problems is augmented by **chaining** instead: each new item extends a one-step
problem of the data's other categories (new values, re-worded as above) by a step on its answer,
told as an event before its question ("… Later, 10 of them are lost. How many crayons does Antony have?")
or asked as a follow-up after it ("… If they are then shared equally into 3 groups, how many are in each
group?"; "……如果再用去9个，还剩多少个？"), and the response gains the step ``r op c = answer``. The
category's own seeds teach its few sentence shapes, and many of them teach a model to add a step where
none is asked for; chained items carry the multi-step skill, going on after the first result with every
number given, into every shape of problem the data has. Measured on hand-written problems
(benchmarks/RESULTS.md), half own-program and half chained items lowered them where all chained did not.
The category's own programs are used only when the data has no one-step rows to chain from.
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
from imts.core.text import CJK, ngrams, normalise, tokens
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


# How a one-step problem is extended by a step on its answer ({c} the new number; {m} the measure word or
# unit of the problem's own question, e.g. 个, 元, 千米): an event told before the problem's own question
# (sums and differences), or a follow-up question after it (any operation).
EN_EVENT: dict[str, tuple[str, ...]] = {
    "+": ("Then {c} more are added.", "Later, {c} more come.", "After that, {c} more turn up."),
    "-": ("Then {c} of them are used up.", "After that, {c} are taken away.", "Later, {c} of them are lost."),
}
EN_FOLLOW: dict[str, tuple[str, ...]] = {
    "+": ("If {c} more are added, how many are there then?", "Then {c} more come. How many are there now?",
          "What is the total once {c} more join them?"),
    "-": ("If {c} of them are then used up, how many are left?", "Then {c} are taken away. How many remain?",
          "How many are left after {c} of them are given away?"),
    "*": ("How many would {c} times as many be?",
          "If the same happens {c} times over, how many is that in all?"),
    "/": ("If they are then shared equally into {c} groups, how many are in each group?",
          "Split evenly among {c} people, how many does each person get?"),
}  # fmt: skip
ZH_EVENT: dict[str, tuple[tuple[str, str], ...]] = {  # (the event, the question after it)
    "+": (("又来了{c}{m}", "现在一共有多少{m}？"), ("后来又添上{c}{m}", "现在有几{m}？"),
          ("接着又买来{c}{m}", "现在有多少{m}？")),
    "-": (("又用去了{c}{m}", "还剩多少{m}？"), ("后来拿走了{c}{m}", "现在还有几{m}？"),
          ("接着送出{c}{m}", "还剩几{m}？")),
}  # fmt: skip
ZH_FOLLOW: dict[str, tuple[str, ...]] = {
    "+": ("如果再添上{c}{m}，一共有多少{m}？", "后来又来了{c}{m}，现在有几{m}？"),
    "-": ("如果再用去{c}{m}，还剩多少{m}？", "接着又拿走了{c}{m}，还剩几{m}？"),
    "*": ("如果有这样的{c}份，一共是多少{m}？", "它的{c}倍是多少{m}？"),
    "/": ("如果把它们平均分成{c}份，每份是多少{m}？",),
}
_EN_END = re.compile(r"\s*The answer is [^.]*\.?\s*$")
_ZH_END = re.compile(r"[，。\s]*答案是[^。]*。?\s*$")
_ZH_UNIT = re.compile(r"(?:几|多少)([^\d\s，。？！、：]{1,2})？\s*$")
_EN_LAST = re.compile(r"^(?P<told>.*[.!])\s+(?P<ask>[^.!?]*\?)\s*$", re.S)
_ZH_LAST = re.compile(r"^(?P<told>.*?)[，。](?P<ask>[^，。？]*？)\s*$", re.S)


def _follow_value(op: str, result: Fraction, used: set[Fraction], rng: random.Random) -> Fraction | None:
    """The follow-up's operand: sums and differences stay positive, products under 1,000, quotients exact."""
    r = int(result)
    if op == "+":
        options = range(5, 41)
    elif op == "-":
        options = range(2, min(r, 61))
    elif op == "*":
        options = range(2, 10) if r * 2 < 1000 else range(0)
    else:
        options = [d for d in range(2, 10) if r % d == 0 and r // d > 1]
    choices = [c for c in options if Fraction(c) not in used and (op != "*" or r * c < 1000)]
    return Fraction(rng.choice(choices)) if choices else None


def _extend(question: str, lang: str, op: str, c: str, event: bool, rng: random.Random) -> str | None:
    """The question with the step on its answer: with ``event``, when the question sentence holds no
    number (so the event comes after every given number), an event before it; else a follow-up question."""
    if lang == "zh":
        unit = _ZH_UNIT.search(question)
        if unit is None:
            return None  # no measure word to ask in
        m = unit.group(1)
        split = _ZH_LAST.match(question.strip())
        if event and op in ZH_EVENT and split and not _NUM.search(split["ask"]) and rng.random() < 0.6:
            happened, ask = rng.choice(ZH_EVENT[op])
            return f"{split['told']}，{happened.format(c=c, m=m)}，{ask.format(m=m)}"
        return question.rstrip() + rng.choice(ZH_FOLLOW[op]).format(c=c, m=m)
    split = _EN_LAST.match(question.strip())
    if event and op in EN_EVENT and split and not _NUM.search(split["ask"]) and rng.random() < 0.6:
        return f"{split['told']} {rng.choice(EN_EVENT[op]).format(c=c)} {split['ask']}"
    return f"{question.rstrip()} {rng.choice(EN_FOLLOW[op]).format(c=c)}"


def chain(
    prog: Program, rng: random.Random, item_id: str, category: str, reworder: Any = None
) -> dict[str, Any] | None:
    """A two-step item: a one-step seed with new values, extended by a step on its answer."""
    base = generate(prog, rng, item_id)
    if base is None:
        return None
    lang = str(base.get("lang") or "en")
    question = user_text(base)
    if reworder is not None:  # the first problem alone, and only into a form that still ends on its question
        new = reworder(question, lang, rng)
        question = new if new.rstrip().endswith(("?", "？")) else question
    result = Fraction(base["answer"])
    used = set(prompt_numbers(question)) | {result}
    ops = ["+", "-", "*", "/"]
    rng.shuffle(ops)
    for op in ops:
        c = _follow_value(op, result, used, rng)
        if c is not None:
            break
    else:
        return None
    value = {"+": result + c, "-": result - c, "*": result * c, "/": result / c}[op]
    # An event only after a sum: its question asks for a total, which an event plainly changes ("How many
    # more does Sam need?" would not follow "Later, 9 more come").
    new_q = _extend(question, lang, op, _fmt(c), prog.steps[0][1] == "+", rng)
    if new_q is None:
        return None
    step = f"{_fmt(result)} {op} {_fmt(c)} = {_fmt(value)}"
    if lang == "zh":
        head = _ZH_END.sub("", assistant_text(base))
        response = f"{head}，再算{step}。答案是{_fmt(value)}。"
    else:
        head = _EN_END.sub("", assistant_text(base)).rstrip(" .")
        response = f"{head}. Then {step}. The answer is {_fmt(value)}."
    meta = {"operation": "augment", "seed_row": prog.seed["id"], "generator": "embedded-chain"}
    return {
        **base,
        "messages": [{"role": "user", "content": new_q}, {"role": "assistant", "content": response}],
        "category": category,
        "answer": _fmt(value),
        "meta": json.dumps(meta, ensure_ascii=False),
    }


def _old_results(prog: Program) -> list[Fraction]:
    return [Fraction(s.claimed.replace(",", "")) for s in extract_steps(assistant_text(prog.seed))]


def chain_seeds(category: str, train: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a multi-step category is chained from: the one-step rows of the other categories whose
    answer is an amount (a sum, difference or product; a quotient is often a rate or a share, "9 miles per
    hour", that a follow-up like "then 40 more come" would not fit), when most of the category's own
    programs take two steps or more (else none: it is not a multi-step one)."""
    own = [len(p.steps) for r in train if r.get("category") == category and (p := program_of(r))]
    if not own or sorted(own)[len(own) // 2] < 2:
        return []
    return [
        r for r in train
        if r.get("category") != category
        and (p := program_of(r)) is not None and len(p.steps) == 1 and p.steps[0][1] != "/"
    ]  # fmt: skip


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
    chain_seeds: list[dict[str, Any]] | None = None,
) -> AugmentState:
    """Generate verified items of ``category`` until ``want`` are accepted (or the tries run out).

    With ``chain_seeds`` (one-step rows of other categories), every candidate is a chained item.
    """
    links = [p for r in chain_seeds or [] if (p := program_of(r)) is not None and len(p.steps) == 1]
    # The category's own programs serve only when there is nothing to chain from.
    programs = [] if links else [p for r in seeds if (p := program_of(r)) is not None]
    if not programs and not links:
        state.rejected["no usable seed row / 没有可用的种子条目"] = want
        return state

    def reworder(question: str, lang: str, rng: random.Random) -> str:
        if paraphraser is not None:
            return _paraphrase(question, lang, paraphraser)
        return reword(question, lang, rng)  # the embedded teacher's new wording (optimise/reword.py)

    for row in state.accepted:
        guard.seen.add(normalise(user_text(row)))
    limit = want * max_tries_per_item
    while len(state.accepted) < want and state.next_index < limit:
        batch = []
        for i in range(state.next_index, min(state.next_index + BATCH, limit)):
            digest = hashlib.sha256(f"{seed}:{category}:{i}".encode()).hexdigest()
            rng = random.Random(int(digest[:16], 16))
            item_id = f"aug-{category}-{digest[:10]}"
            if links:
                batch.append(chain(links[i % len(links)], rng, item_id, category, reworder))
                continue
            item = generate(programs[i % len(programs)], rng, item_id)
            if item is not None:
                new = reworder(user_text(item), str(item.get("lang") or "en"), rng)
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


def _paraphrase(question: str, lang: str, backend: ChatBackend) -> str:
    """The question re-worded by the chat model; the question itself unless the new one can stand for it
    (``fits``)."""
    ask = (
        "把下面的题目换一种说法，数字和意思都不变，只输出新题目：\n"
        if lang == "zh"
        else "Re-word this problem, keeping every number and its meaning; output only the new problem:\n"
    )
    new = backend.chat([{"role": "user", "content": ask + question}], max_tokens=160).text.strip()
    return new if fits(new, question, lang) else question


_ASKS = "?？"
_SOLVES = re.compile(r"\banswers?\b|\bsolution\b|答案|解答|[=＝]", re.IGNORECASE)


def fits(new: str, question: str, lang: str) -> bool:
    """Whether a model's re-wording can stand for ``question``: exactly the same numbers, the same language,
    still a question if it was one (and asking no more often), at most twice as long, and no answer or
    working given away. A small model's reply often fails one of these while keeping the
    numbers: the question dropped ("… The total number of cookies left is the sum of …"), talk about the
    problem ("… a lateral thinking puzzle. The answer is 14 …"), or a run-on tail ("说明：说明：…")."""
    new = new.strip()
    if not new or new == question or Counter(_NUM.findall(new)) != Counter(_NUM.findall(question)):
        return False
    if bool(CJK.search(new)) != (lang == "zh") or len(new) > 2 * len(question):
        return False
    asked, asks = sum(map(question.count, _ASKS)), sum(map(new.count, _ASKS))
    if asks > asked or (asked and not asks):
        return False
    return not (_SOLVES.search(new) and not _SOLVES.search(question))
