"""The fit check on a fixture of matched and mismatched (intent, dataset) pairs over several task types
and both languages: at least 90% of the mismatches refused, at most 5% of the matches."""

from __future__ import annotations

import json
from pathlib import Path

from imts.analysis.fit import check_fit, row_task
from imts.analysis.intent import TaskType, parse_intents

FIXTURES = Path(__file__).parent / "fixtures"


def _pairs() -> list[tuple[dict, str, list[str], list[str], list[int]]]:
    datasets = json.loads((FIXTURES / "fit_datasets.json").read_text(encoding="utf-8"))
    out = []
    for line in (FIXTURES / "fit_pairs.jsonl").read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        rows = datasets[pair["data"]]
        prompts, responses, turns = [], [], []
        for r in rows:
            if "messages" in r:
                prompts.append("\n".join(m["content"] for m in r["messages"][:-1]))
                responses.append(r["messages"][-1]["content"])
                turns.append(len(r["messages"]))
            else:
                prompts.append(r["prompt"])
                responses.append(r["response"])
                turns.append(2)
        out.append((pair, pair["data"], prompts, responses, turns))
    return out


def test_refuses_mismatches_and_keeps_matches() -> None:
    pairs = _pairs()
    specs = parse_intents([p["intent"] for p, *_ in pairs])
    refused = {True: [], False: []}  # type: dict[bool, list[bool]]
    for (pair, _, prompts, responses, turns), spec in zip(pairs, specs, strict=True):
        assert spec.task is not None, pair
        label_like = len(set(responses)) <= max(2, 0.3 * len(responses))
        fit = check_fit(
            spec, prompts, responses, turns, label_like=label_like and spec.task == TaskType.CLASSIFICATION
        )
        refused[pair["match"]].append(fit.refused)
        assert fit.reason_en and fit.reason_zh
        if fit.refused:
            assert fit.suggestion_en and "--force" in fit.suggestion_zh
    langs = {("zh" if any("\u4e00" <= c <= "\u9fff" for c in p["intent"]) else "en") for p, *_ in pairs}
    assert langs == {"zh", "en"} and len({s.task for s in specs}) >= 8
    assert sum(refused[False]) / len(refused[False]) >= 0.9, refused[False]
    assert sum(refused[True]) / len(refused[True]) <= 0.05, refused[True]


def test_row_task_reads_the_shape_of_a_pair() -> None:
    assert (
        row_task("Tom has 3 apples and buys 4 more. How many?", "3 + 4 = 7. The answer is 7.")
        == TaskType.MATH_REASONING
    )
    assert row_task("Reverse a list.", "def rev(xs):\n    return xs[::-1]") == TaskType.CODE
    assert row_task("Hello there", "你好，很高兴认识你。") == TaskType.TRANSLATION
    assert row_task("hi", "hello", turns=4) == TaskType.DIALOGUE
