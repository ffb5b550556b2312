"""New wording for generated items without a language model: the embedded teacher's re-wording.

A generated item takes its seed's sentences with new values; alone, every item of a category would share
its seeds' few sentence shapes, and a model trained on them learns the shapes. Without a chat backend,
each question is re-worded by rules that keep every number and the meaning (English and Chinese):

* the question sentence moved to the front ("How many are left? Tom has 12 apples and gives 5 away.");
* a framing sentence before or an instruction after ("Word problem: …", "… Show your working.", "应用题：…");
* a few safe word swaps (gives/hands, bought/purchased, in all/altogether; 一共/总共, 还剩/剩下);
* a context sentence with no number in it ("It is a busy Saturday.", "今天是星期六。").

It cannot invent new situations, new sentence structures inside a clause, or new vocabulary beyond its
lexicon: a chat backend (``teacher: openai | local``) re-words freely. An item is re-worded only if the
result holds exactly the numbers of the original (checked), otherwise it stays as it was.
"""

from __future__ import annotations

import random
import re
from collections import Counter

_NUM = re.compile(r"\d+(?:\.\d+)?")

EN_FRAMES = ("Word problem: ", "Try this one. ", "Here is a problem for you. ", "Solve the following. ",
             "Question: ", "A quick puzzle. ")  # fmt: skip
EN_ASKS = (
    " Show your working.",
    " Explain each step.",
    " Work it out step by step.",
    " Give the final number.",
)
EN_CONTEXT = (
    "It is a busy Saturday.",
    "School has just finished for the day.",
    "The weather is lovely today.",
    "Everyone is getting ready for the fair.",
    "It is the last day of the holidays.",
)
EN_SWAPS = (("gives", "hands"), ("gave", "handed"), ("buys", "purchases"), ("bought", "purchased"),
            ("in all", "altogether"), ("collected", "gathered"), ("are left", "remain"),
            ("is left", "remains"))  # fmt: skip
ZH_FRAMES = ("应用题：", "请算一算：", "想一想：", "题目：", "来做一道题：")
ZH_ASKS = ("请写出计算过程。", "请一步一步地算。", "请列式计算。")
ZH_CONTEXT = ("今天是星期六。", "放学以后，大家都很开心。", "天气很好。", "学校正在准备运动会。")
# Only swaps no other phrase contains (还剩 / 剩下 would turn 还剩下 into 剩下下).
ZH_SWAPS = (("一共", "总共"),)


def _question_first_en(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    if len(parts) >= 2 and parts[-1].endswith("?"):
        return " ".join([parts[-1], *parts[:-1]])
    return text


def _question_first_zh(text: str) -> str:
    parts = [p for p in re.split(r"(?<=[。！？])", text.strip()) if p]
    if len(parts) >= 2 and parts[-1].endswith("？"):
        return "".join([parts[-1], *parts[:-1]])
    return text


def _swap(text: str, swaps: tuple[tuple[str, str], ...], rng: random.Random, words: bool) -> str:
    for a, b in swaps:
        if rng.random() < 0.5:
            a, b = b, a
        pattern = rf"\b{re.escape(a)}\b" if words else re.escape(a)
        if re.search(pattern, text) and rng.random() < 0.7:
            text = re.sub(pattern, b, text)
    return text


def reword(question: str, lang: str, rng: random.Random) -> str:
    """The question in other words, every number kept; the question itself when no rule applies."""
    for _ in range(4):  # the rules are drawn at random: draw again when none of them applied
        text = _reword_once(question, lang, rng)
        if text != question:
            return text
    return question


def _reword_once(question: str, lang: str, rng: random.Random) -> str:
    zh = lang == "zh"
    text = (_question_first_zh if zh else _question_first_en)(question) if rng.random() < 0.5 else question
    text = _swap(text, ZH_SWAPS if zh else EN_SWAPS, rng, words=not zh)
    sep = "" if zh else " "
    if rng.random() < 0.3:
        text = rng.choice(ZH_CONTEXT if zh else EN_CONTEXT) + sep + text
    roll = rng.random()
    if roll < 0.35:
        text = rng.choice(ZH_FRAMES if zh else EN_FRAMES) + text
    elif roll < 0.7:
        text = text + rng.choice(ZH_ASKS if zh else EN_ASKS)
    if Counter(_NUM.findall(text)) != Counter(_NUM.findall(question)):
        return question
    return text
