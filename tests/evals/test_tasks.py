"""Evaluation tasks per dataset format, and metrics, judges and tasks chosen by name."""

from __future__ import annotations

import pytest

from imts.agents.judges.registry import JUDGES, make_judge
from imts.agents.judges.service import MODES
from imts.core.errors import InputError
from imts.evals import textmetrics as tm
from imts.evals.scoring import score, score_task
from imts.evals.suite import SuiteSpec
from imts.evals.tasks import (
    TASKS,
    ClassificationTask,
    PreferenceTask,
    SftTask,
    TextTask,
    build_task,
    examples,
    split_text,
    task_kind,
)


def _sft(i: str, question: str, response: str, answer: str | None = None) -> dict[str, object]:
    return {
        "id": i,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": response}],
        "category": "addition",
        "lang": "en",
        "answer": answer,
    }


def test_sft_task_is_numeric_exact_match() -> None:
    rows = [_sft("a", "2+3?", "2 + 3 = 5. The answer is 5."), _sft("b", "7+9?", "It is 16.", answer="16")]
    task = SftTask(rows)
    a, b = examples(task)
    assert (a.reference, b.reference) == ("5", "16") and a.prompt == rows[0]["messages"][:-1]  # type: ignore[index]
    assert task.score(a, "The answer is five.").correct and task.score(b, "sixteen").correct
    wrong = task.score(a, "The answer is 6")
    assert (wrong.correct, wrong.extracted, wrong.score) == (False, "6", 0.0)
    # The SFT rows entry point training's validation uses is the same scoring.
    scored = score(rows, ["The answer is 5", "17"], ["exact_match", "rouge_l", "f1"], ["math"])
    assert [i.correct for i in scored.items] == [True, False] and scored.summary["exact_match"] == 0.5
    assert set(scored.extra["a"]) == {"rouge_l", "judge:math"} and "answer_f1" in scored.summary


def test_classification_reads_the_label_and_scores_per_label() -> None:
    rows = [
        {"id": "1", "text": "a wonderful film", "label": "positive", "lang": "en"},
        {"id": "2", "text": "dull and long", "label": "negative", "lang": "en"},
        {"id": "3", "text": "好看极了", "label": "positive", "lang": "zh"},
    ]
    task = ClassificationTask(rows)
    one, two, three = examples(task)
    assert (
        "negative, positive" in one.prompt[-1]["content"] and "a wonderful film" in one.prompt[-1]["content"]
    )
    assert "标签" in three.prompt[-1]["content"]
    assert task.score(one, " Positive.").correct and task.score(one, "Label: positive").correct
    assert task.score(one, "I would say positive, not negative").extracted == "positive"
    assert not task.score(two, "positive").correct and task.score(two, "no idea").extracted == "no idea"
    scored = score_task(task, [one, two, three], ["positive", "positive", "negative"], ["f1"], [])
    assert [i.correct for i in scored.items] == [True, False, False]
    s = scored.summary
    assert s["precision:positive"] == 0.5 and s["recall:positive"] == 0.5
    assert s["precision:negative"] == 0.0 and s["f1:negative"] == 0.0 and "macro_f1" in s


def test_preference_and_text_tasks_score_their_predictions() -> None:
    pref = PreferenceTask([{"id": "p", "prompt": "2+2?", "chosen": "4", "rejected": "5"}])
    (p,) = examples(pref)
    assert p.extra["choices"] == ["4", "5"] and pref.kind == "choose"
    assert pref.score(p, "4").correct and pref.score(p, "5").extracted == "rejected"
    text = TextTask([{"id": "t", "text": "the cat sat on the warm mat today"}], threshold=0.5)
    (t,) = examples(text)
    assert t.reference_text == "the warm mat today" and t.prompt[-1]["content"].endswith("\nthe cat sat on")
    exact, half, none = (text.score(t, x) for x in ("The warm mat today.", "a warm rug", "dogs bark"))
    assert exact.correct and exact.score == 1.0 and none.score == 0.0 and not none.correct
    assert half.score == pytest.approx(tm.rouge_l("a warm rug", "the warm mat today")) and not half.correct
    assert split_text("小明有三个苹果和两个梨") == ("小明有三个", "苹果和两个梨")
    prose = build_task("sft", [_sft("s", "Say hi", "hello there")], name="text")
    assert examples(prose)[0].reference_text == "hello there"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(InputError, match="exact_match, f1, bleu, rouge_l, distinct_2, perplexity"):
        tm.metric("meteor")
    with pytest.raises(InputError, match="math, safety, logic"):
        make_judge("vibes")
    with pytest.raises(InputError, match="asks a chat model"):
        make_judge("logic")
    assert MODES[2:] == tuple(JUDGES)
    with pytest.raises(InputError, match="sft, classification, preference, text"):
        task_kind("sft", "ranking")
    with pytest.raises(InputError, match="holds preference rows; the text task reads text or sft rows"):
        task_kind("preference", "text", "pref@1")
    assert set(TASKS) == {"sft", "classification", "preference", "text"}
    with pytest.raises(InputError, match="unknown judge") as err:
        SuiteSpec.parse({"judges": ["logic"]})  # a suite has no chat backend
    assert err.value.field == "judges"
    with pytest.raises(InputError, match="unknown task"):
        SuiteSpec.parse({"task": "ranking"})
    assert SuiteSpec.parse({"task": "text", "text_threshold": 0.3}).task == "text"
