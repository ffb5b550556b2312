"""Split: seeded, stratified, decontaminated (exact + 13-gram), recorded with lineage."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from tests.conftest import write_jsonl

from imts.core.text import tokens
from imts.data.ingest import import_file
from imts.data.split import decontaminate, split_rows, split_version
from imts.data.versions import load_rows, resolve
from imts.store.workspace import Workspace


def _row(i: int, prompt: str, category: str = "c") -> dict:
    return {
        "id": str(i),
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "x"}],
        "category": category,
    }


def test_tokens_handle_chinese_and_latin() -> None:
    assert tokens("小明有23个苹果, Tom has 5!") == [
        "小",
        "明",
        "有",
        "23",
        "个",
        "苹",
        "果",
        "tom",
        "has",
        "5",
    ]


def test_split_is_seeded_and_stratified() -> None:
    rows = [_row(i, f"q{i}", "a" if i % 10 else "rare") for i in range(200)]
    a = split_rows(rows, (0.8, 0.1, 0.1), seed=3, stratify_by="category")
    b = split_rows(list(rows), (0.8, 0.1, 0.1), seed=3, stratify_by="category")
    assert [r["id"] for r in a["test"]] == [r["id"] for r in b["test"]]
    assert {k: len(v) for k, v in a.items()} == {"train": 160, "val": 20, "test": 20}
    assert sum(r["category"] == "rare" for r in a["test"]) == 2  # 10% of the 20 rare rows
    c = split_rows(list(rows), (0.8, 0.1, 0.1), seed=4, stratify_by="category")
    assert [r["id"] for r in a["test"]] != [r["id"] for r in c["test"]]


def test_decontamination_exact_and_ngram() -> None:
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    train = [_row(0, "What is 2 + 2?"), _row(1, long)]
    held = [
        _row(10, "what is 2+2"),  # exact after normalisation
        _row(11, "Prefix words here: " + long),  # shares a 13-gram
        _row(12, "one two three four five six seven eight nine ten eleven twelve"),  # only 12 tokens shared
        _row(13, "Something unrelated entirely"),
    ]
    kept, report = decontaminate(train, held)
    assert [r["id"] for r in kept] == ["12", "13"]
    assert report["exact_removed"] == 1 and report["ngram13_removed"] == 1
    assert {e["reason"] for e in report["examples"]} == {"exact", "13-gram"}


def test_split_version_lineage_and_no_leak(ws: Workspace, mathgen: ModuleType, tmp_path: Path) -> None:
    rows, manifest = mathgen.generate(n=600, seed=2)
    v1 = import_file(ws, write_jsonl(tmp_path / "m.jsonl", rows), name="m")
    v2 = split_version(ws, v1, seed=0)
    assert v2.parents == [v1.id]
    assert resolve(ws, v2.ref).version.parents == [v1.id]
    assert v2.operation == "split" and v2.params["seed"] == 0
    train = load_rows(ws, resolve(ws, f"{v2.ref}:train"))
    test = load_rows(ws, resolve(ws, f"{v2.ref}:test"))
    train_prompts = {r["messages"][0]["content"] for r in train}
    assert not any(r["messages"][0]["content"] in train_prompts for r in test)
    # The generator planted exact duplicates; any that straddled train/test were removed and counted.
    dup_pairs = {tuple(p) for p in manifest["exact_duplicates"]}
    test_ids = {r["id"] for r in test}
    train_ids = {r["id"] for r in train}
    assert not any(
        (a in test_ids and b in train_ids) or (b in test_ids and a in train_ids) for a, b in dup_pairs
    )
    assert v2.stats["split"]["test"] == len(test) == v2.report["counts"]["test"]
    assert v2.stats["split"]["train"] == len(train)
    assert (
        v2.report["counts"]["train"]
        + v2.report["counts"]["val"]
        + len(test)
        + sum(v2.report[k]["exact_removed"] + v2.report[k]["ngram13_removed"] for k in ("val", "test"))
        == 600
    )
