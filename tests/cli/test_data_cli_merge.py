"""`imts data` as a user meets it (issue 20): append and merge with both parents in the lineage, an
identical re-import that says "unchanged", `show NAME@N:SPLIT` counting the split, `list --json`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import imts
from tests.conftest import write_jsonl


def _rows(start: int, stop: int) -> list[dict[str, str]]:
    return [
        {"prompt": f"What is {n} + 1?", "response": f"{n + 1}", "category": "add"} for n in range(start, stop)
    ]


def test_append_merge_unchanged_show_list(tmp_path: Path) -> None:
    def ok(*args: str) -> str:
        out = imts(tmp_path, *args)
        assert out.returncode == 0, out.stderr + out.stdout
        return out.stdout

    first = write_jsonl(tmp_path / "first.jsonl", _rows(0, 20))
    assert "imported 20 rows as math@1" in ok("data", "import", str(first), "--name", "math")
    out = ok("data", "import", str(first), "--name", "math")
    assert "unchanged: math@1" in out and "no new version made" in out

    ok("data", "split", "math", "--ratios", "0.5,0.25,0.25")
    show = ok("data", "show", "math@2:test", "--rows", "0")
    assert "rows 5 (split test; 20 in the whole version)" in show
    assert json.loads(ok("data", "show", "math@2:test", "--rows", "0", "--json"))["split_rows"] == 5

    # Append a file that overlaps the dataset: only its new rows are added, the splits are dropped.
    more = write_jsonl(tmp_path / "more.jsonl", _rows(15, 30))
    out = ok("data", "import", str(more), "--name", "math", "--append")
    assert "append: math@3" in out and "= math@2 (20 rows) + 10 new rows of" in out
    assert "5 already in math@2 left out" in out and "imts data split math@3" in out
    out = ok("data", "import", str(more), "--name", "math", "--append")
    assert "unchanged: math@3" in out

    # Merge another dataset's version: both versions are the new one's parents.
    ok("data", "import", str(write_jsonl(tmp_path / "extra.jsonl", _rows(100, 104))), "--name", "extra")
    out = ok("data", "merge", "math", "extra@1")
    assert "merge: math@4" in out and "= math@3 (30 rows) + 4 new rows of extra@1" in out
    assert "math@4 merge <- extra@1, math@3" in ok("data", "lineage", "math")
    lineage = json.loads(ok("data", "lineage", "math", "--json"))
    assert lineage["versions"][-1]["parents"] == ["extra@1", "math@3"]
    assert lineage["versions"][2]["operation"] == "append"

    listed = json.loads(ok("data", "list", "--json"))
    by_ref = {f"{v['dataset']}@{v['number']}": v for v in listed}
    assert set(by_ref) == {"math@1", "math@2", "math@3", "math@4", "extra@1"}
    assert by_ref["math@4"]["num_rows"] == 34 and by_ref["math@4"]["id"].startswith("dv_")
    assert len(by_ref["math@4"]["parents"]) == 2 and by_ref["math@2"]["stats"]["split"]["test"] == 5

    # The same id with other content is refused, naming the id; nothing is written.
    clash = write_jsonl(tmp_path / "clash.jsonl", [{"id": "q1", "prompt": "a", "response": "1"}])
    ok("data", "import", str(clash), "--name", "ids")
    clash2 = write_jsonl(tmp_path / "clash2.jsonl", [{"id": "q1", "prompt": "b", "response": "2"}])
    out = imts(tmp_path, "data", "import", str(clash2), "--name", "ids", "--append")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "row id 'q1' of" in out.stderr and "is in ids@1 already, with other content" in out.stderr
    assert [v["number"] for v in json.loads(ok("data", "list", "ids", "--json"))] == [1]
    pref = write_jsonl(tmp_path / "pref.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    ok("data", "import", str(pref), "--name", "pref")
    out = imts(tmp_path, "data", "merge", "math", "pref@1")
    assert out.returncode == 2 and "math@4 holds sft rows and pref@1 holds preference rows" in out.stderr
