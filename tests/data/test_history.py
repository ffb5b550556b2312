"""Diff, rollback, lineage, sharing, export, preview and stats over real versions."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.conftest import write_jsonl

from imts.core.errors import InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.settings import Settings
from imts.data.export import export, to_hf
from imts.data.history import diff, lineage, rollback
from imts.data.ingest import import_file
from imts.data.inspect import field_stats, preview
from imts.data.split import split_version
from imts.data.versions import ReadOnlyError, load_rows, resolve, share_version
from imts.services.startup import local_context
from imts.store.context import Context as Workspace
from imts.store.models import Run


def _rows(n: int, changed: set[int] = frozenset(), cat: str = "addition") -> list[dict[str, str]]:  # type: ignore[assignment]
    return [
        {
            "id": f"r{i}",
            "prompt": f"What is {i} plus {i}?",
            "response": str(2 * i + (1 if i in changed else 0)),
            "category": cat if i % 2 else "division",
        }
        for i in range(n)
    ]


def test_diff_rollback_and_lineage(any_ws: Workspace, tmp_path: Path) -> None:
    ws = any_ws
    v1 = import_file(ws, write_jsonl(tmp_path / "a.jsonl", _rows(10)), name="d")
    rows2 = _rows(12, changed={3})[1:]  # r0 removed, r10 r11 added, r3 changed
    v2 = import_file(ws, write_jsonl(tmp_path / "b.jsonl", rows2), name="d")
    d = diff(ws, v1, v2)
    assert (d["rows"]["added"], d["rows"]["removed"], d["rows"]["changed"], d["rows"]["unchanged"]) == (
        2,
        1,
        1,
        8,
    )
    assert d["rows"]["examples"] == {"added": ["r10", "r11"], "removed": ["r0"], "changed": ["r3"]}
    assert d["schema"] == {"added": {}, "removed": {}, "retyped": {}}
    assert d["shift"]["category"]["values"]["division"] == {
        "a": 5,
        "b": 5,
        "share_change": round(5 / 11 - 0.5, 4),
    }
    by_content = diff(ws, v1, v2, by="content")
    assert (by_content["rows"]["added"], by_content["rows"]["removed"]) == (3, 2)
    s = split_version(ws, v2, (0.8, 0.1, 0.1), seed=0)
    ds = diff(ws, v2, s)
    assert ds["schema"]["added"] == {"split": "string"} and ds["rows"]["changed"] == 0
    back = rollback(ws, "d", "1")
    assert back.number == 4 and back.shards == v1.shards and back.content_hash == v1.content_hash
    assert back.operation == "rollback" and resolve(ws, "d").version.id == back.id
    assert load_rows(ws, back) == load_rows(ws, v1)
    with ws.session() as sess:
        sess.add(
            Run(
                id=new_id("run"),
                project_id=ws.project_id,
                kind="train",
                dataset_version_id=s.id,
                split="train",
            )
        )
    g = lineage(ws, "d")
    by_ref = {v["ref"]: v for v in g["versions"]}
    assert [v["ref"] for v in g["versions"]] == ["d@1", "d@2", "d@3", "d@4"]
    assert by_ref["d@3"]["parents"] == ["d@2"] and by_ref["d@3"]["operation"] == "split"
    assert by_ref["d@4"]["parents"] == ["d@1"] and by_ref["d@3"]["runs"][0]["kind"] == "train"
    with pytest.raises(NotFoundError):
        lineage(ws, "nope")


def test_preview_and_stats_with_guarded_where(ws: Workspace, tmp_path: Path) -> None:
    v = import_file(ws, write_jsonl(tmp_path / "a.jsonl", _rows(30)), name="d")
    rows, total = preview(ws, v, where="category = 'division'", limit=4, offset=2)
    assert total == 15 and [r["id"] for r in rows] == ["r4", "r6", "r8", "r10"]
    rows, total = preview(ws, v, where="len(messages[2].content) = 2", limit=100)
    assert total == 25  # answers 10..58
    for bad in ("1=1; DROP TABLE rows", "id IN (SELECT 1) -- x", "x = read_csv('/etc/passwd')"):
        with pytest.raises(InputError):
            preview(ws, v, where=bad)
    with pytest.raises(InputError, match="bad --where"):
        preview(ws, v, where="category = (SELECT content FROM read_text('/etc/hostname'))")
    st = field_stats(ws, v)
    assert st["rows"] == 30 and st["languages"] == {"en": 30}
    cat = st["fields"]["category"]
    assert cat["top"] == [["addition", 15], ["division", 15]] and cat["nulls"] == 0
    assert st["fields"]["answer"]["nulls"] == 30
    hist = st["fields"]["messages"]["length"]["histogram"]
    assert (
        sum(h[2] for h in hist) == 30
        and st["fields"]["messages"]["length"]["min"] == len("What is 0 plus 0?") + 1
    )


def test_share_read_only_across_projects(ws: Workspace, tmp_path: Path) -> None:
    v = import_file(ws, write_jsonl(tmp_path / "a.jsonl", _rows(20)), name="d")
    other = local_context(Settings(workspace=ws.settings.workspace, project="other"))
    with pytest.raises(NotFoundError):
        resolve(other, "default/d@1")
    with pytest.raises(NotFoundError):
        resolve(other, v.id)
    share_version(ws, "d@1", "other")
    seen = resolve(other, "default/d@1").version
    assert seen.id == v.id and resolve(other, v.id).version.id == v.id
    assert load_rows(other, seen) == load_rows(ws, v)
    with pytest.raises(ReadOnlyError, match="shared read-only"):
        split_version(other, seen)
    with pytest.raises(ReadOnlyError):
        share_version(other, v.id, "third")
    own = split_version(other, seen, into="mine")
    assert own.project_id == other.project_id and own.parents == [v.id]
    v2 = import_file(ws, write_jsonl(tmp_path / "b.jsonl", _rows(21)), name="d")
    assert resolve(other, "default/d").version.id == v.id  # v2 was not shared
    with pytest.raises(NotFoundError):
        resolve(other, v2.id)


def test_export_jsonl_parquet_hf(ws: Workspace, tmp_path: Path) -> None:
    v = split_version(ws, import_file(ws, write_jsonl(tmp_path / "a.jsonl", _rows(40)), name="d"), seed=1)
    test_ref = resolve(ws, f"d@{v.number}:test")
    out = export(ws, test_ref, tmp_path / "out" / "test.jsonl")
    lines = (tmp_path / "out" / "test.jsonl").read_text().splitlines()
    assert out["rows"] == len(lines) == v.stats["split"]["test"]
    assert {json.loads(x)["split"] for x in lines} == {"test"}
    export(ws, v, tmp_path / "all.parquet")
    assert pq.read_table(tmp_path / "all.parquet").to_pylist() == load_rows(ws, v)
    hf = to_hf(ws, v)
    assert len(hf) == 40 and hf[0]["messages"][0]["role"] == "user" and "split" in hf.column_names
    export(ws, v, tmp_path / "hfdir")
    import datasets

    assert datasets.load_from_disk(str(tmp_path / "hfdir")).num_rows == 40
    with pytest.raises(InputError, match="cannot tell the export format"):
        export(ws, v, tmp_path / "x.xlsx")
