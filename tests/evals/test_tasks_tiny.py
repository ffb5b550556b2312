"""Classification, preference and free-text datasets evaluated end to end on the tiny model.

The tiny model answers nothing right on its own, so some answers are planted in the generation cache
(the same keys an evaluation computes): those items show a right and a wrong outcome; the rest are the
model's own generations, scored the same way.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tests.conftest import write_jsonl

from imts.data.ingest import import_file
from imts.data.versions import load_rows
from imts.evals import cache
from imts.evals.service import EvalSettings, _prompt, evaluate, load_result
from imts.evals.tasks import ClassificationTask, build_task, examples
from imts.inference.generate import Sampling
from imts.registry import base_models
from imts.registry.models import resolve as resolve_model
from imts.store.context import Context
from imts.store.models import EvalItem, Run


def _plant(ws: Context, fmt: str, rows: list[dict[str, Any]], answers: dict[str, str], **task: Any) -> None:
    """Put ``answers`` (item id -> text) in the generation cache as the tiny model's answers."""
    mkey = cache.model_key(ws, resolve_model(ws, "tiny"))
    items = {e.id: e for e in examples(build_task(fmt, rows, **task))}
    settings = {"max_new_tokens": 6, **asdict(Sampling())}
    keys = cache.item_keys(mkey, [_prompt(items[i].prompt, None) for i in answers], settings)
    cache.store(ws, mkey, {k: (text, 1) for k, text in zip(keys, answers.values(), strict=True)})


def _run(ws: Context, run_id: str) -> tuple[dict[str, Any], dict[str, EvalItem]]:
    with ws.session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "succeeded"
        items = {i.item_id: i for i in s.scalars(select(EvalItem).where(EvalItem.run_id == run_id))}
        s.expunge_all()
        return dict(run.summary), items


def test_classification_dataset(ws: Context, tiny_model: Path, tmp_path: Path) -> None:
    base_models.add(ws, tiny_model, name="tiny")
    labels = ["positive", "negative", "neutral"]
    rows = [{"id": f"c{n}", "text": f"review number {n}", "label": labels[n % 3]} for n in range(9)]
    stored = load_rows(ws, import_file(ws, write_jsonl(tmp_path / "cls.jsonl", rows), name="cls"))
    _plant(ws, "classification", stored, {"c0": "Positive.", "c1": "positive", "c2": "I think neutral"})
    summary, items = _run(
        ws, evaluate(ws, "tiny", "cls:all", EvalSettings(max_new_tokens=6, metrics=("f1",)))
    )
    assert summary["cache_hits"] == 3 and summary["n"] == 9
    assert (items["c0"].correct, items["c0"].extracted, items["c0"].score) == (True, "positive", 1.0)
    assert (items["c1"].correct, items["c1"].extracted) == (False, "positive")  # gold: negative
    assert items["c2"].correct and items["c2"].reference == "neutral"
    task = ClassificationTask(stored)
    for i in items.values():  # the model's own answers: correct exactly when they name the gold label
        assert i.correct == (task.predicted_label(i.prediction) == i.reference)
    assert summary["metrics"]["recall:negative"] <= 2 / 3 and "precision:positive" in summary["metrics"]
    assert summary["accuracy"] == sum(i.correct for i in items.values()) / 9


def test_preference_dataset(ws: Context, tiny_model: Path, tmp_path: Path) -> None:
    """Each pair appears twice, chosen and rejected swapped: the model prefers one of the two responses,
    so exactly one of the two rows is correct, whichever the tiny model happens to like."""
    base_models.add(ws, tiny_model, name="tiny")
    pairs = [("2 + 3 = 5. The answer is 5.", "The answer is 7."), ("Tom has 4 apples.", "4 4 4 4 4 4 4 4")]
    rows = []
    for n, (a, b) in enumerate(pairs):
        rows.append({"id": f"p{n}", "prompt": f"question {n}", "chosen": a, "rejected": b})
        rows.append({"id": f"p{n}-swapped", "prompt": f"question {n}", "chosen": b, "rejected": a})
    import_file(ws, write_jsonl(tmp_path / "pref.jsonl", rows), name="pref")
    first = evaluate(ws, "tiny", "pref:all")
    summary, items = _run(ws, first)
    assert summary["n"] == 4 and summary["cache_hits"] == 0 and summary["accuracy"] == 0.5
    for n, (a, b) in enumerate(pairs):
        one, other = items[f"p{n}"], items[f"p{n}-swapped"]
        assert one.correct != other.correct and one.prediction == other.prediction in (a, b)
        assert one.extracted == ("chosen" if one.correct else "rejected") and one.reference == "chosen"
    second = evaluate(ws, "tiny", "pref:all")  # the picks are cached like generations
    assert _run(ws, second)[0]["cache_hits"] == 4
    assert [i.prediction for i in load_result(ws, first).items] == [
        i.prediction for i in load_result(ws, second).items
    ]


def test_free_text_datasets(ws: Context, tiny_model: Path, tmp_path: Path) -> None:
    base_models.add(ws, tiny_model, name="tiny")
    texts = ["the quick brown fox jumps over the lazy dog", "we walked to the river and sat by the water"]
    rows = [{"id": f"t{n}", "text": t} for n, t in enumerate(texts)]
    stored = load_rows(ws, import_file(ws, write_jsonl(tmp_path / "prose.jsonl", rows), name="prose"))
    _plant(ws, "text", stored, {"t0": "jumps over the lazy dog", "t1": "a cat"})
    settings = EvalSettings(max_new_tokens=6, metrics=("rouge_l", "bleu"), text_threshold=0.5)
    summary, items = _run(ws, evaluate(ws, "tiny", "prose:all", settings))
    assert (
        items["t0"].correct
        and items["t0"].score == 1.0
        and items["t0"].reference == "jumps over the lazy dog"
    )
    assert not items["t1"].correct and items["t1"].score == 0.0
    assert summary["metrics"]["text_score"] == 0.5 and summary["metrics"]["rouge_l"] == 0.5

    # SFT rows whose answers are prose: the text task instead of numeric exact match.
    qa = [
        {"prompt": "Greet me", "response": "hello there my friend"},
        {"prompt": "Name a colour", "response": "deep ocean blue"},
    ]
    sft_rows = load_rows(ws, import_file(ws, write_jsonl(tmp_path / "qa.jsonl", qa), name="qa"))
    _plant(ws, "sft", sft_rows, {sft_rows[0]["id"]: "hello there friend"}, name="text")
    summary, items = _run(ws, evaluate(ws, "tiny", "qa:all", EvalSettings(max_new_tokens=6, task="text")))
    first = items[sft_rows[0]["id"]]
    assert first.correct and 0.5 < first.score < 1.0 and first.prompt == "Greet me"
    other = items[sft_rows[1]["id"]]
    assert other.correct == (other.score >= 0.5) and summary["cache_hits"] == 1 and summary["n"] == 2
