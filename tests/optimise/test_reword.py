"""The embedded teacher's re-wording: other words, the same numbers, the same every run."""

from __future__ import annotations

import random
import re
from collections import Counter

from imts.optimise.reword import reword

QUESTIONS = [
    ("Tom has 12 apples. How many are left after he gives 5 of them to Mia?", "en"),
    ("There are 4 boxes with 6 pens each. How many pens are there in all?", "en"),
    ("小明有12个苹果，给了小红5个。小明还剩多少个苹果？", "zh"),
    ("商店一共有30个橘子，卖出了12个。还剩多少个？", "zh"),
]


def test_rewording_keeps_every_number_and_changes_the_words() -> None:
    rng = random.Random(0)
    for question, lang in QUESTIONS:
        variants = {reword(question, lang, rng) for _ in range(20)}
        assert len(variants) >= 4 and question not in variants  # other words, every time
        for v in variants:
            assert Counter(re.findall(r"\d+", v)) == Counter(re.findall(r"\d+", question))
            if lang == "zh":
                assert not re.search(r"[A-Za-z]", v)  # Chinese stays Chinese
            else:
                assert not re.search(r"[\u4e00-\u9fff]", v)


def test_rewording_is_deterministic_for_a_seed() -> None:
    q, lang = QUESTIONS[0]
    assert [reword(q, lang, random.Random(7)) for _ in range(3)] == [reword(q, lang, random.Random(7))] * 3
