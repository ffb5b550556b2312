from __future__ import annotations

from pathlib import Path

import pytest

from imts.agents.backends import LocalBackend, RulesBackend, make_backend
from imts.agents.judges.base import JudgeItem
from imts.agents.judges.court import Seat, debate
from imts.core.errors import InputError


def test_backends_by_name(tiny_model: Path) -> None:
    assert isinstance(make_backend("rules"), RulesBackend)
    local = make_backend("local", model_path=tiny_model)
    assert isinstance(local, LocalBackend)
    reply = local.chat([{"role": "user", "content": "What is 2 + 2?"}], max_tokens=5)
    assert reply.prompt_tokens > 5 and 0 < reply.completion_tokens <= 5
    sampled = [local.chat([{"role": "user", "content": "Hi"}], 8, temperature=1.0).text for _ in range(2)]
    assert sampled[0] == sampled[1]  # seeded: the same request gives the same text
    with pytest.raises(InputError, match="unknown backend 'gpt'"):
        make_backend("gpt")
    with pytest.raises(InputError, match="URL"):
        make_backend("openai")


def test_heterogeneous_debate_with_a_local_model(tiny_model: Path) -> None:
    item = JudgeItem("i", "What is 6 * 7?", "6 * 7 = 42. The answer is 42.", "42")
    d = debate([Seat(RulesBackend()), Seat(LocalBackend(tiny_model), "logic")], item)
    # The random tiny model writes no verdict: it stays at the undecided 5 and the court says so.
    assert d.rounds[0][0][0] == 10.0 and d.rounds[0][1][1].startswith("unparsed reply")
    assert d.consensus == pytest.approx(7.5) and d.disputed and d.calls == 4
