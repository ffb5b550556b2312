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


def test_a_models_rewording_is_kept_only_when_it_can_stand_for_the_question() -> None:
    """Replies SmolLM2-135M-Instruct gave when asked to re-word generated questions (recorded), which keep
    every number and still cannot stand for the question, and re-wordings that can."""
    from imts.optimise.augment import fits

    cookies = "Ben baked 59 cookies. How many are left after the family eats 52 of them?"
    cards = "Zoe has 13 postcards. What will Zoe have when Ella gives her 14 more?"
    buttons = "小东有39个纽扣，乐乐又送来56个。小东现在有几个？"
    refused = [
        (cookies, "en", "Ben baked 59 cookies. The family ate 52 cookies. The total number of cookies "
                        "left is the sum of the number of cookies eaten and the number of cookies left."),
        (cards, "en", "The problem is a classic example of a lateral thinking puzzle. The answer is 14, "
                      "but in this case, the answer is actually 13."),
        (buttons, "zh", buttons + "  这是一个非常明明的问题，可以用一个简单的例子来解决：" + " - 说明：" * 8),
        (cookies, "en", cookies),  # a copy is not a re-wording
        (cookies, "en", "The answer is what Ben keeps after the family eats 52 of his 59 cookies: how many?"),
        (cookies, "en", "Ben baked 59 cookies and the family ate 25. How many are left?"),  # other numbers
        (buttons, "zh", "Xiaodong has 39 buttons and Lele brings 56 more. How many now?"),  # other language
        (cards, "en", "Zoe has 13 postcards. Is that a lot? What will she have when Ella gives 14 more?"),
    ]  # fmt: skip
    for question, lang, reply in refused:
        assert not fits(reply, question, lang), reply
    kept = [
        (cookies, "en", "The family eats 52 of the 59 cookies Ben baked. How many cookies are left?"),
        (cards, "en", "If Ella hands Zoe 14 more postcards, how many will Zoe have? She has 13 now."),
        (buttons, "zh", "乐乐又给了小东56个纽扣，小东原来有39个，现在一共有几个？"),
    ]  # fmt: skip
    for question, lang, reply in kept:
        assert fits(reply, question, lang), reply
