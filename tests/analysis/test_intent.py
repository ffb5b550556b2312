"""Intent -> task spec on the labelled fixture (60+ Chinese, 60+ English intents, ten task types plus
vague ones); the held-out half was written before the rules and never used to tune them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imts.analysis.intent import TaskType, parse_intent, parse_intents

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", ["intents_dev.jsonl", "intents_heldout.jsonl"])
def test_task_type_accuracy_per_language(name: str) -> None:
    rows = _load(name)
    specs = parse_intents([r["intent"] for r in rows])
    right: dict[str, list[bool]] = {}
    for r, s in zip(rows, specs, strict=True):
        got = s.task.value if s.task else "vague"
        right.setdefault(s.lang, []).append(got == r["task"])
    assert {t for r in rows for t in [r["task"]] if t != "vague"} == {t.value for t in TaskType}
    for lang, hits in right.items():
        assert len(hits) >= 30, lang
        assert sum(hits) / len(hits) >= 0.9, (lang, sum(hits), len(hits))


def test_spec_fields_and_vague_question() -> None:
    spec = parse_intent("我想训练一个能解决小学奥数题的数学模型")
    assert spec.task == TaskType.MATH_REASONING and spec.lang == "zh"
    assert spec.domain == "education" and "zh" in spec.languages
    assert spec.answer_form == "reasoning_then_answer"
    assert "multi-step chain of thought" in spec.abilities and "division" in spec.sub_skills
    vague = parse_intent("make it better")
    assert vague.task is None and vague.question("zh") and vague.question("en")
    tr = parse_intent("Translate English medical leaflets into Spanish.")
    assert tr.task == TaskType.TRANSLATION and set(tr.languages) == {"en", "es"}


class _ScriptedBackend:
    """A chat backend that answers one fixed reply (the shape any ``ChatBackend`` has)."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def chat(self, messages: list[dict[str, str]], max_tokens: int = 256, temperature: float = 0.0) -> object:
        from imts.agents.chat import ChatReply

        return ChatReply(self.reply, 10, 10)


def test_a_configured_backend_refines_and_a_bad_reply_is_ignored() -> None:
    refined = parse_intent(
        "answer questions about our products",
        _ScriptedBackend('{"task": "knowledge_qa", "domain": "retail"}'),
    )
    assert (
        refined.task == TaskType.KNOWLEDGE_QA
        and refined.domain == "retail"
        and refined.method.endswith("scripted")
    )
    kept = parse_intent("对商品评价做情感分类", _ScriptedBackend("I think it is sentiment"))
    assert kept.task == TaskType.CLASSIFICATION and kept.method == "rules+minilm"
