"""Suites, the generation cache and per-item scores on the tiny model, in SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from imts.core.errors import InputError
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.data.versions import load_rows
from imts.evals.refs import eval_data
from imts.evals.service import item_scores, load_result, run_suite
from imts.evals.suite import SuiteSpec
from imts.registry import base_models
from imts.store.models import GenerationCache, Run, utcnow
from imts.store.workspace import Workspace


def test_suite_runs_metrics_judges_and_caches(any_ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    ws = any_ws
    base_models.add(ws, tiny_model, name="tiny")
    v = split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    suite = SuiteSpec(
        name="t",
        datasets=[f"{v.ref}:test"],
        metrics=["exact_match", "rouge_l", "bleu", "distinct_2", "f1", "perplexity"],
        judges=["math", "safety"],
        max_new_tokens=8,
        max_items=12,
        system_prompt="Answer with the steps and 'The answer is N.'",
    )
    started = utcnow()  # the PostgreSQL database is shared by the session's tests: count this test's rows
    (first,) = run_suite(ws, "tiny", suite)
    (second,) = run_suite(ws, "tiny", suite)
    with ws.session() as s:
        runs = {r.id: dict(r.summary) for r in s.scalars(select(Run).where(Run.id.in_([first, second])))}
        cached = s.scalars(select(GenerationCache).where(GenerationCache.created_at >= started)).all()
    assert runs[first]["cache_hits"] == 0 and runs[second]["cache_hits"] == 12 and len(cached) == 12
    assert runs[second]["gen_new_tokens"] == 0  # nothing generated the second time
    assert [i.prediction for i in load_result(ws, first).items] == [
        i.prediction for i in load_result(ws, second).items
    ]
    metrics = runs[first]["metrics"]
    assert set(metrics) >= {"exact_match", "rouge_l", "bleu", "distinct_2", "answer_f1", "perplexity"}
    assert metrics["perplexity"] > 1 and 0 <= metrics["rouge_l"] <= 1 and 0 <= metrics["judge_math"] <= 1
    scores = item_scores(ws, first)
    assert len(scores) == 12
    one = next(iter(scores.values()))
    assert set(one) == {"rouge_l", "judge:math", "judge:safety"}
    assert one["judge:safety"][1] == "safe" and one["judge:math"][1] in (
        "correct",
        "wrong_answer",
        "wrong_step",
    )

    sampled = SuiteSpec.model_validate(
        {**suite.model_dump(), "sampling": {"temperature": 0.9, "seed": 1}, "judges": []}
    )
    (third,) = run_suite(ws, "tiny", sampled)
    with ws.session() as s:
        run = s.get(Run, third)
        assert run is not None and run.summary["cache_hits"] == 0  # other settings, other cache entries


def test_suite_yaml_errors_are_located(tmp_path: Path) -> None:
    good = tmp_path / "suite.yaml"
    good.write_text("name: m\ndatasets: [math:test]\nmetrics: [exact_match, rouge_l]\njudges: [math]\n")
    assert SuiteSpec.from_yaml(good).metrics == ["exact_match", "rouge_l"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: m\nmetrics: [exact_match, meteor]\n")
    with pytest.raises(InputError, match="meteor") as err:
        SuiteSpec.from_yaml(bad)
    assert err.value.field == "metrics" and err.value.file == str(bad)


def test_a_set_named_in_items_is_scored_on_its_own_count(
    ws: Workspace, tiny_model: Path, math_file: Path
) -> None:
    """``max_items`` for every set, ``items`` in its place for the sets it names (null: every item): how a
    loop scores its held-out sets in full beside a sample of its splits."""
    base_models.add(ws, tiny_model, name="tiny")
    v = split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    val, test = f"{v.ref}:val", f"{v.ref}:test"
    suite = SuiteSpec(datasets=[val, test], max_items=5, items={test: None}, max_new_tokens=4)
    first, second = run_suite(ws, "tiny", suite)
    assert len(load_result(ws, first).items) == 5
    assert len(load_result(ws, second).items) == len(load_rows(ws, eval_data(ws, test))) > 5
    with pytest.raises(ValueError, match="not in datasets"):
        SuiteSpec(datasets=[val], items={test: 3})
