"""`imts data import` as a user meets it: chat rows keep their reference answer (graded against it, and
renumbered by the red team), mixed chat/Alpaca files, skipped rows counted by reason, compressed files."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from pathlib import Path

from tests.cli.test_cli import imts
from tests.cli.test_cli_court import imts as imts_here  # the same commands in this process: one torch import


def _spiders(k: int) -> dict[str, object]:
    # The reference response's last number is k, not the answer 8k: only the ``answer`` field is right.
    return {
        "messages": [
            {"role": "user", "content": f"How many legs do {k} spiders have?"},
            {
                "role": "assistant",
                "content": f"Each spider has 8 legs: {k} x 8 = {8 * k}, counting all {k} spiders.",
            },
        ],
        "answer": str(8 * k),
    }


def test_chat_rows_are_graded_against_their_answer(tmp_path: Path, tiny_model: Path) -> None:
    imts = imts_here
    f = tmp_path / "spiders.jsonl.gz"
    f.write_bytes(gzip.compress("".join(json.dumps(_spiders(k)) + "\n" for k in range(3, 23)).encode()))
    out = imts(tmp_path, "data", "import", str(f))
    assert out.returncode == 0, out.stderr
    assert "imported 20 rows as spiders@1" in out.stdout and "answer<-answer" in out.stdout
    assert imts(tmp_path, "data", "split", "spiders", "--seed", "0").returncode == 0
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    ev = imts(tmp_path, "eval", "--inline", "--model", "tiny", "--data", "spiders@2", "--max-new-tokens", "4")
    assert ev.returncode == 0, ev.stderr
    with sqlite3.connect(next((tmp_path / "ws").rglob("*.db"))) as db:
        refs = {r for (r,) in db.execute("SELECT reference FROM eval_items")}
        prompts = [p for (p,) in db.execute("SELECT prompt FROM eval_items")]
    expected = {str(8 * int(p.split("How many legs do ")[1].split()[0])) for p in prompts}
    assert refs and refs == expected  # 24 for 3 spiders, never 3
    # The red team's number changes apply to chat rows too (its math judge wants the answer last).
    legs = tmp_path / "legs.jsonl"
    rows = [_spiders(k) for k in range(3, 23)]
    for r, k in zip(rows, range(3, 23), strict=True):
        r["messages"][1]["content"] = f"Each spider has 8 legs, so {k} spiders have {k} x 8 = {8 * k} legs."  # type: ignore[index]
    legs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert imts(tmp_path, "data", "import", str(legs)).returncode == 0
    assert imts(tmp_path, "data", "split", "legs", "--seed", "0").returncode == 0
    hard = imts(tmp_path, "redteam", "legs@2", "--seed", "1")
    assert hard.returncode == 0, hard.stderr
    assert re.search(r"numbers [1-9]", hard.stdout), hard.stdout


def test_mixed_formats_and_skipped_rows_are_reported(tmp_path: Path) -> None:
    rows = [
        json.dumps(_spiders(3)),
        json.dumps({"instruction": "Add 2 and 3", "output": "5"}),
        json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}),
        "not json",
        json.dumps({"instruction": "Add 4 and 4", "output": "8"}),
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(rows) + "\n")
    out = imts(tmp_path, "data", "import", str(f))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "mixed.jsonl:3" in out.stderr and "this row is preference" in out.stderr
    assert "detected from line 1" in out.stderr
    out = imts(tmp_path, "data", "import", str(f), "--on-error", "skip")
    assert out.returncode == 0, out.stderr
    assert "imported 3 rows" in out.stdout and "skipped 2 bad rows" in out.stdout
    assert "1 × malformed JSON" in out.stdout
    assert "1 × field 'messages': expected a non-empty list of messages; this row is preference" in out.stdout
    assert "chat: messages<-messages, answer<-answer: 1" in out.stdout
