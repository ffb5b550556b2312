"""Every judge by name (``JUDGES``): the one place suites, the scorer and the court choose judges from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imts.agents.judges.base import Judge
from imts.core.errors import InputError

if TYPE_CHECKING:  # the registry is read where no backend runs (suite validation)
    from imts.agents.chat import ChatBackend


@dataclass(frozen=True)
class JudgeKind:
    """A judge by name; ``needs_backend`` when it asks a chat model (an evaluation suite has none)."""

    name: str
    needs_backend: bool
    make: Callable[[ChatBackend | None], Judge]


def _math(_: ChatBackend | None) -> Judge:
    from imts.agents.judges.math import MathJudge

    return MathJudge()


def _safety(_: ChatBackend | None) -> Judge:
    from imts.agents.judges.rules import RulesSafetyJudge

    return RulesSafetyJudge()


def _logic(backend: ChatBackend | None) -> Judge:
    from imts.agents.judges.llm import LLMJudge

    assert backend is not None
    return LLMJudge(backend, "logic")


JUDGES: dict[str, JudgeKind] = {
    k.name: k
    for k in (
        JudgeKind("math", False, _math),
        JudgeKind("safety", False, _safety),
        JudgeKind("logic", True, _logic),
    )
}


def make_judge(name: str, backend: ChatBackend | None = None) -> Judge:
    """The judge called ``name``.

    Raises:
        InputError: no judge of that name, or it needs a chat backend and none is given.
    """
    kind = JUDGES.get(name)
    if kind is None:
        raise InputError(f"unknown judge '{name}' (choose from {', '.join(JUDGES)})", field="judges")
    if kind.needs_backend and backend is None:
        raise InputError(f"the {name} judge asks a chat model: give it a backend", field="judges")
    return kind.make(backend)
