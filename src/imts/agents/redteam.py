"""The red team: perturb a test split into a hard-mode dataset version, recorded with lineage.

Per row, in order (each perturbation is recorded in the row's ``meta.red_team``):

* **numbers**: the prompt's numbers get new values; the reference steps are recomputed in sequence and
  the new answer is accepted only if the math judge, re-executing the new steps in its sandbox, finds
  them all correct against it (otherwise the numbers stay as they were);
* **names**: people's names (and a few object nouns) swapped consistently in prompt and response;
* **distractor**: an irrelevant sentence, often with a number of its own, put before the question;
* **paraphrase**: the question reworded by a chat backend; kept only when it keeps every number.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imts.agents.backends import RulesBackend
from imts.agents.chat import ChatBackend
from imts.agents.judges.base import JudgeItem
from imts.agents.judges.math import MathJudge, extract_steps
from imts.agents.judges.rules import exact_value
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, VersionInfo, commit_version, load_rows, resolve
from imts.store.context import Context

_INT = re.compile(r"(?<!\d)(?<!\d\.)\d+(?!\d|\.\d)")  # whole numbers, not parts of decimals
EN_NAMES = ("Liam", "Emma", "Noah", "Olivia", "Ethan", "Ava", "Mason", "Grace", "Lucas", "Mia", "Leo", "Zoe")
ZH_NAMES = ("小明", "小红", "小芳", "乐乐", "丁丁", "婷婷", "小刚", "明明", "佳佳", "小军")
SWAPS = {
    "apples": "pears",
    "stickers": "stamps",
    "books": "comics",
    "marbles": "beads",
    "苹果": "橘子",
    "铅笔": "钢笔",
}
EN_DISTRACTORS = (
    "Her cousin, who lives {n} kilometres away, collects stamps.",
    "The shop had opened {n} years earlier.",
    "It was a sunny day and the park was busy.",
    "A neighbour owns {n} goldfish, but that is another story.",
)
ZH_DISTRACTORS = ("那天天气很好。", "隔壁的王叔叔养了{n}条金鱼。", "学校离家有{n}公里远。")
PARAPHRASE_PROMPT = (
    "PARAPHRASE:\nRewrite the question in other words. Keep every number and the meaning exactly. "
    "Reply with the question only.\nQUESTION:\n{q}"
)


@dataclass
class RedTeamReport:
    rows: int = 0
    applied: Counter[str] = field(default_factory=Counter)
    rejected_numbers: int = 0  # new numbers whose recomputed steps the math judge did not confirm

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "applied": dict(self.applied), "rejected_numbers": self.rejected_numbers}


def _renumber(
    prompt: str, response: str, answer: str, rng: random.Random
) -> tuple[dict[int, int], str] | None:
    """New values for the prompt's numbers with the steps recomputed in order: the old -> new mapping of
    every number (given and computed) and the new answer; None when no consistent assignment was found."""
    steps = extract_steps(response)
    given = [int(n) for n in _INT.findall(prompt)]
    if not steps or not given or len(set(given)) != len(given):
        return None
    for _ in range(12):
        mapping = {g: g + rng.choice([-3, -2, -1, 1, 2, 3, 5, 7]) * max(1, g // 10) for g in given}
        if any(v <= 0 for v in mapping.values()) or len(set(mapping.values())) != len(mapping):
            continue
        ok = True
        for step in steps:
            expr = _INT.sub(lambda m, mp=mapping: str(mp.get(int(m.group(0)), m.group(0))), step.expression)
            value = exact_value(expr)
            old = int(step.claimed.replace(",", ""))
            if value is None or value.denominator != 1 or value <= 0 or mapping.get(old, value) != value:
                ok = False  # not a whole positive number, or it collides with a number already mapped
                break
            mapping[old] = int(value)
        if ok and mapping.get(int(answer), int(answer)) != int(answer):  # the answer must change too
            return mapping, str(mapping[int(answer)])
    return None


def _apply(mapping: dict[int, int], text: str) -> str:
    return _INT.sub(lambda m: str(mapping.get(int(m.group(0)), m.group(0))), text)


def _swap_names(text: str, pairs: dict[str, str]) -> str:
    if not pairs:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(pairs, key=len, reverse=True)))
    return pattern.sub(lambda m: pairs[m.group(0)], text)


def _name_pairs(text: str, lang: str, rng: random.Random) -> dict[str, str]:
    pool = ZH_NAMES if lang == "zh" else EN_NAMES
    present = [n for n in pool if n in text]
    others = [n for n in pool if n not in text]
    rng.shuffle(others)
    pairs = dict(zip(present, others, strict=False))
    pairs.update({k: v for k, v in SWAPS.items() if k in text})
    return pairs


def _distract(prompt: str, lang: str, rng: random.Random) -> str:
    n = rng.randint(3, 40)
    if lang == "zh":
        sentence = rng.choice(ZH_DISTRACTORS).format(n=n)
        cut = max(prompt.rfind("，"), prompt.rfind("。"))
        return prompt[: cut + 1] + sentence + prompt[cut + 1 :] if cut >= 0 else sentence + prompt
    sentence = rng.choice(EN_DISTRACTORS).format(n=n)
    parts = re.split(r"(?<=[.!])\s+", prompt)
    return " ".join([*parts[:-1], sentence, parts[-1]]) if len(parts) > 1 else f"{sentence} {prompt}"


def perturb_rows(
    rows: Sequence[dict[str, Any]],
    backend: ChatBackend | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], RedTeamReport]:
    """Hard-mode copies of canonical rows (same ids; ``meta.red_team`` lists what was done)."""
    backend = backend or RulesBackend()
    progress = progress or NullProgress()
    rng = random.Random(seed)
    report = RedTeamReport(rows=len(rows))
    # Numbers first, all rows at once: the math judge verifies every recomputed answer in one sandbox run.
    numbers: dict[int, tuple[dict[int, int], str]] = {}
    for n, row in enumerate(rows):
        answer = str(row.get("answer") or "")
        found = (
            _renumber(row["messages"][-2]["content"], row["messages"][-1]["content"], answer, rng)
            if answer.isdigit()
            else None
        )
        if found is not None:
            numbers[n] = found
    checks = [
        JudgeItem(str(n), "", _apply(m, rows[n]["messages"][-1]["content"]), new)
        for n, (m, new) in numbers.items()
    ]
    for check in MathJudge().judge(checks):
        if check.verdict != "correct":
            report.rejected_numbers += 1
            numbers.pop(int(check.item_id))
    out: list[dict[str, Any]] = []
    with progress.task("red-teaming", total=len(rows)) as bar:
        for n, row in enumerate(rows):
            messages = [dict(m) for m in row["messages"]]
            prompt, response = messages[-2]["content"], messages[-1]["content"]
            answer, lang, done = row.get("answer"), row.get("lang") or "en", []
            meta = json.loads(row.get("meta") or "{}")
            if n in numbers:
                mapping, answer = numbers[n]
                prompt, response = _apply(mapping, prompt), _apply(mapping, response)
                meta["original_answer"] = row.get("answer")
                done.append("numbers")
            pairs = _name_pairs(prompt + response, lang, rng)
            if pairs:
                prompt, response = _swap_names(prompt, pairs), _swap_names(response, pairs)
                done.append("names")
            reply = backend.chat([{"role": "user", "content": PARAPHRASE_PROMPT.format(q=prompt)}], 128).text
            reply = reply.strip()
            if reply and reply != prompt and Counter(_INT.findall(reply)) == Counter(_INT.findall(prompt)):
                prompt = reply
                done.append("paraphrase")
            prompt = _distract(prompt, lang, rng)
            done.append("distractor")
            messages[-2]["content"], messages[-1]["content"] = prompt, response
            meta["red_team"] = done
            out.append(
                {**row, "messages": messages, "answer": answer, "meta": json.dumps(meta, ensure_ascii=False)}
            )
            report.applied.update(done)
            bar.advance(1)
    return out, report


def red_team(
    ctx: Context,
    data_ref: str,
    name: str | None = None,
    backend: ChatBackend | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> VersionInfo:
    """Perturb a dataset split (default: ``test``) into a new version of dataset ``name`` (default
    ``<dataset>-hard``), whose parent is the source version."""
    ref = resolve(ctx, data_ref)
    if ref.split is None and "test" in ref.version.stats.get("split", {}):
        ref = DataRef(ref.version, "test")
    rows = load_rows(ctx, ref)
    hard, report = perturb_rows(rows, backend, seed, progress)
    backend_name = (backend or RulesBackend()).name
    return commit_version(
        ctx,
        dataset=name or f"{ref.version.dataset}-hard",
        rows=hard,
        operation="red_team",
        params={"source": str(ref), "seed": seed, "backend": backend_name},
        parents=[ref.version.id],
        report=report.to_dict(),
        create=True,
        progress=progress,
    )
