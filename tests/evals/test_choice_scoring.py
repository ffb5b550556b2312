"""Choice scoring shares each prompt's pass among its choices: the same mean log-probabilities as scoring
every (prompt, choice) sequence whole, for prompts and answers of different lengths in one batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from imts.evals import textmetrics as tm
from imts.inference.generate import load

ITEMS = [
    ([{"role": "user", "content": "Tom has 12 apples and buys 30 more. How many apples does he have?"}],
     ["42", "He has 42 apples. The answer is 42.", "18"]),
    ([{"role": "user", "content": "小明有15支铅笔，送给同学6支，还剩几支？"}], ["还剩9支。答案是9。", "21"]),
    ([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 7 * 8?"}],
     ["56", "7 * 8 = 56. The answer is 56."]),
    ([{"role": "user", "content": "Split 40 cookies into 5 boxes."}], ["8 in each box.", "35 in each box."]),
]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_shared_prompt_scores_equal_whole_sequence_scores(tiny_model: Path, batch_size: int) -> None:
    tokenizer, model = load(tiny_model)
    shared = tm.choice_logprobs(tokenizer, model, ITEMS, batch_size)
    assert [len(s) for s in shared] == [len(cs) for _, cs in ITEMS]
    pairs = [(p, c) for p, cs in ITEMS for c in cs]
    whole = iter(-nll / n for nll, n in tm.answer_nlls(tokenizer, model, pairs, batch_size=1))
    for (_, cs), got in zip(ITEMS, shared, strict=True):
        want = [next(whole) for _ in cs]
        assert got == pytest.approx(want, abs=1e-4)
        assert all(v < 0 for v in got)
        assert max(range(len(cs)), key=got.__getitem__) == max(range(len(cs)), key=want.__getitem__)
