"""Judge a stored evaluation run's answers with the court and keep the verdicts with its item scores."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sqlalchemy import delete

from imts.agents.chat import ChatBackend
from imts.agents.judges.base import JudgeItem
from imts.agents.judges.service import judge_items
from imts.evals.service import load_result
from imts.store.context import Context
from imts.store.models import EvalItemScore


def judge_run(ctx: Context, eval_run: str, mode: str, backend: ChatBackend, out: Path | None = None) -> str:
    """Judge every item of ``eval_run``; verdicts stored as ``judge:<mode>`` scores (a disputed debate's
    rationale starts with "disputed"); a one-line summary naming the disputed items."""
    result = load_result(ctx, eval_run)
    items = [JudgeItem(i.item_id, i.prompt, i.prediction, i.reference, i.category) for i in result.items]
    judgements, cost = judge_items(items, mode, backend)
    name = f"judge:{mode}"
    with ctx.session() as s:
        s.execute(delete(EvalItemScore).where(EvalItemScore.run_id == eval_run, EvalItemScore.name == name))
        s.add_all(
            EvalItemScore(
                run_id=eval_run,
                item_id=j.item_id,
                name=name,
                value=j.score,
                label=j.verdict,
                note=j.rationale,
            )
            for j in judgements
        )
    if out is not None:
        out.write_text(
            "".join(
                json.dumps(
                    {
                        "item_id": j.item_id,
                        "judge": j.judge,
                        "verdict": j.verdict,
                        "score": j.score,
                        "disputed": bool(j.details.get("disputed", False)),
                        "rationale": j.rationale,
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for j in judgements
            ),
            encoding="utf-8",
        )
    counts = ", ".join(f"{k} {n}" for k, n in Counter(j.verdict for j in judgements).most_common())
    debated = [j for j in judgements if "disputed" in j.details]
    if debated:  # judges of one rubric who still disagree after the debate: worth a human look
        disputed = [j.item_id for j in debated if j.details["disputed"]]
        counts += f"; disputed {len(disputed)} of {len(debated)} debated"
        counts += f" ({', '.join(disputed[:10])}{' …' if len(disputed) > 10 else ''})" if disputed else ""
    return f"{counts}; cost {json.dumps(cost)}"
