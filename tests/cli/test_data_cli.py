"""`imts data` end to end through the real command: inspect, dedup, diff, rollback, lineage, export, share."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from tests.cli.test_cli import imts


def test_data_commands_end_to_end(tmp_path: Path, math_file: Path) -> None:
    def ok(*args: str) -> str:
        out = imts(tmp_path, *args)
        assert out.returncode == 0, out.stderr + out.stdout
        return out.stdout

    assert "imported 400 rows as math@1" in ok("data", "import", str(math_file), "--name", "math")
    page = json.loads(
        ok("data", "preview", "math", "--where", "category = 'division'", "--limit", "3", "--json")
    )
    assert (
        page["total"] > 0 and len(page["rows"]) == 3 and {r["category"] for r in page["rows"]} == {"division"}
    )
    stats = json.loads(ok("data", "stats", "math", "--json"))
    assert stats["rows"] == 400 and set(stats["languages"]) == {"en", "zh"}
    assert "length histogram" in ok("data", "stats", "math")
    bad = imts(tmp_path, "data", "preview", "math", "--where", "1=1; drop table rows")
    assert bad.returncode == 2 and "no ';' or comments" in bad.stderr
    out = ok("data", "dedup", "math", "--threshold", "0.7")
    assert "dedup -> math@2: 400 ->" in out and "exact" in out
    diff = json.loads(ok("data", "diff", "math@1", "math@2", "--json"))
    assert diff["rows"]["removed"] > 0 and diff["rows"]["added"] == 0 and diff["rows"]["changed"] == 0
    assert "rolled back: math@3 = math@1" in ok("data", "rollback", "math", "1")
    lineage = ok("data", "lineage", "math")
    assert "math@2 dedup <- math@1" in lineage and "math@3 rollback <- math@1" in lineage
    assert "exported 400 rows" in ok("data", "export", "math@3", str(tmp_path / "out.jsonl"))
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 400
    assert "shared math@1 read-only with project team-b" in ok("data", "share", "math@1", "--with", "team-b")
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as c:
        c.execute("create table t (text text, label text)")
        c.executemany("insert into t values (?, ?)", [("good", "pos"), ("bad", "neg")])
    out = ok("data", "query", f"sqlite:///{db}", "select * from t", "--name", "cls")
    assert "imported 2 rows as cls@1" in out and "classification" in out
    info = json.loads(ok("data", "embed", "cls@1", "--out", str(tmp_path / "v.npy"), "--json"))
    assert (info["rows"], info["dim"], info["executor"]) == (2, 384, "local")
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert len((tmp_path / "v.ids.txt").read_text().split()) == 2


def test_dedup_keeps_problems_that_differ_in_number_order_or_operation(tmp_path: Path) -> None:
    from tests.data.test_dedup import DISTINCT, SAME

    prompts = [p for pair in DISTINCT for p in pair] + [SAME[0][1], SAME[2][1]]  # two true duplicates
    rows = [{"prompt": p, "response": f"answer {i}"} for i, p in enumerate(prompts)]
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert imts(tmp_path, "data", "import", str(src), "--name", "pairs").returncode == 0
    out = imts(tmp_path, "data", "dedup", "pairs", "--threshold", "0.7")
    assert out.returncode == 0, out.stderr
    assert f"{len(prompts)} -> {len(prompts) - 2} rows (-0 exact, -2 near)" in out.stdout, out.stdout
    hf = imts(tmp_path, "data", "export", "pairs@2", str(tmp_path / "hf"), "--format", "hf")
    assert hf.returncode == 0 and "exported 18 rows" in hf.stdout, hf.stderr
    assert "Saving the dataset" not in hf.stdout + hf.stderr  # datasets' own bar stays off
