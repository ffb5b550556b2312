from __future__ import annotations

import json
from pathlib import Path

from imts.agents.chat import ChatReply
from imts.agents.judges.base import JudgeItem
from imts.agents.judges.math import MathJudge
from imts.agents.redteam import perturb_rows, red_team
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.data.versions import load_rows, resolve
from imts.store.workspace import Workspace


def test_red_team_version_with_lineage_and_verified_answers(ws: Workspace, math_file: Path) -> None:
    v = split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    hard = red_team(ws, v.ref, seed=1)
    assert hard.dataset == "math-hard" and hard.operation == "red_team" and hard.parents == [v.id]
    source = load_rows(ws, resolve(ws, f"{v.ref}:test"))
    rows = load_rows(ws, resolve(ws, f"{hard.ref}:test"))
    assert len(rows) == len(source) == hard.num_rows and [r["id"] for r in rows] == [r["id"] for r in source]
    applied = hard.report["applied"]
    assert applied["distractor"] == len(rows) and applied["numbers"] > len(rows) // 2 and applied["names"] > 0
    changed = [r for r in rows if "numbers" in json.loads(r["meta"])["red_team"]]
    # Every recomputed answer holds up when the steps are re-executed in the sandbox.
    verdicts = MathJudge().judge(
        [
            JudgeItem(r["id"], r["messages"][-2]["content"], r["messages"][-1]["content"], r["answer"])
            for r in changed
        ]
    )
    assert all(j.verdict == "correct" for j in verdicts)
    assert sum(r["answer"] != json.loads(r["meta"])["original_answer"] for r in changed) == len(changed)
    by_id = {r["id"]: r for r in source}
    assert all(r["messages"][-2]["content"] != by_id[r["id"]]["messages"][-2]["content"] for r in rows)


class NumberChanger:
    name = "changer"

    def chat(self, messages, max_tokens=256, temperature=0.0):  # type: ignore[no-untyped-def]
        return ChatReply("How many are there if you add 1000?", 10, 8)


def test_paraphrase_that_changes_numbers_is_rejected() -> None:
    row = {
        "id": "r1",
        "messages": [
            {"role": "user", "content": "Tom has 12 apples and buys 7 more. How many apples now?"},
            {"role": "assistant", "content": "12 + 7 = 19. The answer is 19."},
        ],
        "category": "addition",
        "lang": "en",
        "answer": "19",
        "meta": "{}",
    }
    out, report = perturb_rows([row], NumberChanger(), seed=0)
    assert (
        "paraphrase" not in json.loads(out[0]["meta"])["red_team"]
        and "1000" not in out[0]["messages"][0]["content"]
    )
    assert report.applied["numbers"] == 1 and out[0]["answer"] != "19"
