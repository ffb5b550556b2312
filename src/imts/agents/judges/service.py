"""The court's modes over a list of items: one judge by name, the debate, or the cascade (with cost)."""

from __future__ import annotations

from imts.agents.chat import ChatBackend
from imts.agents.judges.base import JudgeItem, Judgement
from imts.agents.judges.court import Cascade, Seat, debate_judgement
from imts.agents.judges.registry import JUDGES, make_judge
from imts.core.errors import InputError

# The court's compositions of judges, then every single judge by name.
MODES = ("cascade", "debate", *JUDGES)


def judge_items(
    items: list[JudgeItem], mode: str, backend: ChatBackend
) -> tuple[list[Judgement], dict[str, object]]:
    """Judgements in the given mode, plus its cost (calls and tokens, per cascade level)."""
    court = [Seat(backend, "logic"), Seat(backend, "safety")]
    if mode == "cascade":
        result = Cascade(Seat(backend, "logic"), court).run(items)
        cost: dict[str, object] = {k: vars(v) for k, v in result.levels.items()}
        return result.judgements, cost
    if mode == "debate":
        got = [debate_judgement(court, i) for i in items]
    elif mode in JUDGES:
        got = make_judge(mode, backend).judge(items)
    else:
        raise InputError(f"unknown judging mode '{mode}' (choose from {', '.join(MODES)})", field="mode")
    return got, {"calls": sum(j.calls for j in got), "tokens": sum(j.tokens for j in got)}
