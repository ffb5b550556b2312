"""Seeded generator of grade-school math word problems (English and Chinese).

Used by ``imts demo`` to build the example dataset that a small LLM is fine-tuned on. Everything is
stdlib and deterministic for a given ``(n, seed, zh_share)``: the only randomness is one
``random.Random(seed)``.

Each row::

    {"id": "mwp-000001", "prompt": ..., "response": ..., "answer": "16",
     "category": "addition|subtraction|multiplication|division|multi_step", "lang": "en|zh"}

Reasoning responses show every step as an explicit ASCII expression (``23 - 7 = 16``) and end with
"The answer is N." / "答案是N。", so a Python sandbox can re-execute the steps.

Planted, realistic defects (exact counts follow from ``n``; which rows get them follows from the seed):

* ~15% answer-only responses (just the number),
* ~3% exact duplicates of an earlier row (new id),
* ~3% near duplicates of an earlier row (slightly re-worded prompt, same numbers and answer),
* ~1% rows whose prompt carries personal data (full name plus phone number, sometimes an email).

The manifest records the ground truth of all of that: ``answer_only_ids`` lists every row whose response
is just the number (copies of an answer-only row included), ``exact_duplicates`` / ``near_duplicates``
are ``[dup_id, original_id]`` pairs, ``pii_ids`` the rows with personal data (never used as originals).
Apart from the planted duplicates, no two rows share a template with the same numbers.

Templates keep number-free stretches short (< 10 tokens, counting words/numbers and single CJK
characters) and keep two different numbers close together, so two distinct items from one template
rarely share 13 consecutive tokens (measured in ``tests/examples/test_mathgen.py``; ~0.1-0.6%).

CLI::

    python examples/mathgen.py --n 3000 --seed 0 --out data.jsonl [--manifest manifest.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, NamedTuple

CATEGORIES: tuple[str, ...] = ("addition", "subtraction", "multiplication", "division", "multi_step")

# Category mix of the generated (non-duplicate) rows; division is deliberately under-represented.
CATEGORY_WEIGHTS: dict[str, float] = {
    "addition": 0.27,
    "subtraction": 0.27,
    "multiplication": 0.26,
    "division": 0.02,
    "multi_step": 0.18,
}

ANSWER_ONLY_RATE = 0.15
EXACT_DUP_RATE = 0.03
NEAR_DUP_RATE = 0.03
PII_RATE = 0.01


class Template(NamedTuple):
    key: str
    category: str
    lang: str
    op: str
    prompt: str
    response: str


# --------------------------------------------------------------------------------------------------
# Vocabulary pools
# --------------------------------------------------------------------------------------------------

# (first name, gender)
EN_NAMES: tuple[tuple[str, str], ...] = (
    ("Tom", "m"), ("Emma", "f"), ("Liam", "m"), ("Olivia", "f"), ("Noah", "m"), ("Ava", "f"),
    ("Ethan", "m"), ("Mia", "f"), ("Lucas", "m"), ("Sophia", "f"), ("Jack", "m"), ("Lily", "f"),
    ("Ben", "m"), ("Grace", "f"), ("Sam", "m"), ("Chloe", "f"), ("Leo", "m"), ("Zoe", "f"),
    ("Max", "m"), ("Ella", "f"), ("Ryan", "m"), ("Nora", "f"), ("Owen", "m"), ("Ruby", "f"),
)  # fmt: skip
EN_SURNAMES: tuple[str, ...] = (
    "Carter", "Miller", "Johnson", "Brown", "Davis", "Wilson", "Moore", "Taylor", "Anderson", "Thomas",
    "Martin", "Clark", "Lewis", "Walker", "Young", "Hall",
)  # fmt: skip
EN_OBJECTS: tuple[str, ...] = (
    "marbles", "stickers", "apples", "pencils", "books", "cookies", "stamps", "shells", "cards",
    "balloons", "oranges", "crayons", "coins", "beads", "cupcakes", "erasers", "postcards", "ribbons",
    "buttons", "candies",
)  # fmt: skip
EN_PLACES: tuple[str, ...] = ("store", "market", "classroom", "shop", "kitchen", "garage", "library", "fair")

ZH_NAMES: tuple[str, ...] = (
    "小明", "小红", "小刚", "小丽", "小华", "小军", "小芳", "小强", "小兰", "小东", "乐乐", "欢欢",
    "明明", "丁丁", "亮亮", "婷婷", "李阿姨", "王叔叔", "张奶奶", "刘爷爷",
)  # fmt: skip
# (surname, pinyin)
ZH_SURNAMES: tuple[tuple[str, str], ...] = (
    ("张", "zhang"), ("王", "wang"), ("李", "li"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu"),
)  # fmt: skip
ZH_GIVEN: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"),
    ("洋", "yang"), ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("军", "jun"), ("丽", "li"),
)  # fmt: skip
# (measure word, noun)
ZH_OBJECTS: tuple[tuple[str, str], ...] = (
    ("个", "苹果"), ("支", "铅笔"), ("颗", "糖果"), ("张", "贴纸"), ("个", "橘子"), ("块", "饼干"),
    ("朵", "红花"), ("只", "气球"), ("个", "桃子"), ("张", "卡片"), ("颗", "弹珠"), ("块", "橡皮"),
    ("枚", "邮票"), ("个", "鸡蛋"), ("根", "香蕉"), ("支", "彩笔"), ("个", "贝壳"), ("本", "画册"),
    ("把", "尺子"), ("个", "纽扣"),
)  # fmt: skip
ZH_PLACES: tuple[str, ...] = ("商店", "超市", "商场", "杂货店", "仓库", "小卖部")


# --------------------------------------------------------------------------------------------------
# Templates. Placeholders: {n} name, {n2} second name, {he}/{He}/{him}/{his} pronouns (en),
# {o} object (en plural / zh noun), {m} zh measure word, {loc} place, numbers {a} {b} {c} {k} {r} {ans}.
# Numbers are spread through the text so that no number-free stretch is long (see module tests).
# --------------------------------------------------------------------------------------------------

_EN: dict[str, list[tuple[str, str, str]]] = {
    "addition": [
        (
            "add",
            "{n} has {a} {o}. What will {n} have when {n2} gives {him} {b} more?",
            "{n} starts with {a} {o} and gets {b} more, so {a} + {b} = {ans}. The answer is {ans}.",
        ),
        (
            "add",
            "If a shelf holds {a} {o} and a box holds {b}, how many {o} does {n} have in all?",
            "{a} on the shelf plus {b} in the box: {a} + {b} = {ans}. The answer is {ans}.",
        ),
        (
            "add",
            "{n} read {a} pages on Monday. What is the total with {b} more on Tuesday?",
            "{a} + {b} = {ans} pages in all for {n}. The answer is {ans}.",
        ),
        (
            "add",
            "There are {a} {o} in the {loc}. If {b} more arrive, how many are there?",
            "{a} + {b} = {ans}, so there are {ans} {o}. The answer is {ans}.",
        ),
        (
            "add",
            "{n} scored {a} points, then {b} more in the second game. What is {his} total?",
            "{a} + {b} = {ans} points for {n}. The answer is {ans}.",
        ),
        (
            "add",
            "{n} collected {a} {o} last week and {b} this week. How many {o} does {n} have?",
            "{a} + {b} = {ans}, so {n} has {ans} {o}. The answer is {ans}.",
        ),
        (
            "add",
            "{n} had {a} dollars. How many dollars does {n} have after earning {b} more?",
            "{a} + {b} = {ans} dollars. The answer is {ans}.",
        ),
    ],
    "subtraction": [
        (
            "sub",
            "{n} has {a} {o}. How many are left after {n} gives {b} of them to {n2}?",
            "{n} starts with {a} {o} and gives away {b}, so {a} - {b} = {ans}. The answer is {ans}.",
        ),
        (
            "sub",
            "The {loc} had {a} {o} this morning. If {b} were given away, how many {o} remain?",
            "{a} - {b} = {ans}, so {ans} {o} remain. The answer is {ans}.",
        ),
        (
            "sub",
            "{n} needs {a} {o} and already has {b}. How many more does {n} need?",
            "{n} needs {a} - {b} = {ans} more {o}. The answer is {ans}.",
        ),
        (
            "sub",
            "{b} people left a bus with {a} aboard. How many remain on it?",
            "{b} got off, so {a} - {b} = {ans} people remain. The answer is {ans}.",
        ),
        (
            "sub",
            "{n} baked {a} cookies. How many are left after the family eats {b} of them?",
            "{a} - {b} = {ans}, so {n} has {ans} cookies left. The answer is {ans}.",
        ),
        (
            "sub",
            "{n} had {a} dollars. After spending {b} on a gift, how much is left?",
            "{a} - {b} = {ans} dollars are left. The answer is {ans}.",
        ),
    ],
    "multiplication": [
        (
            "mul",
            "{n} buys {k} boxes of {o}, and each box holds {a}. How many {o} does {n} have?",
            "{k} boxes with {a} {o} each is {k} * {a} = {ans}. The answer is {ans}.",
        ),
        (
            "mul",
            "There are {k} shelves in the {loc}, each with {a} {o}. How many in all?",
            "{k} shelves with {a} {o} each: {k} * {a} = {ans}. The answer is {ans}.",
        ),
        (
            "mul",
            "How many minutes does {n} walk in {k} days if {he} walks {a} minutes a day?",
            "{a} * {k} = {ans} minutes in total. The answer is {ans}.",
        ),
        (
            "mul",
            "A ticket costs {a} dollars, and {n} buys {k} tickets. How much does {n} pay?",
            "{a} dollars times {k} tickets is {a} * {k} = {ans} dollars. The answer is {ans}.",
        ),
        (
            "mul",
            "Each bag holds {a} {o}, and {n} fills {k} bags. How many {o} does {n} pack?",
            "{a} {o} in each of {k} bags: {a} * {k} = {ans} {o}. The answer is {ans}.",
        ),
        (
            "mul",
            "{n} saves {a} dollars a week for {k} weeks. How much does {n} save?",
            "{a} * {k} = {ans} dollars. The answer is {ans}.",
        ),
    ],
    "division": [
        (
            "div",
            "{n} shares {a} {o} equally among {b} friends. How many {o} does each friend get?",
            "{a} {o} split among {b} friends is {a} / {b} = {ans} each. The answer is {ans}.",
        ),
        (
            "div",
            "A teacher puts {a} {o} into {b} equal piles. How many {o} are in each pile?",
            "{a} / {b} = {ans} {o} per pile. The answer is {ans}.",
        ),
        (
            "div",
            "{n} drove {a} miles at a steady speed in {b} hours. How fast was that?",
            "{a} / {b} = {ans} miles per hour. The answer is {ans}.",
        ),
        (
            "div",
            "There are {a} students, and each team has {b}. How many teams can they form?",
            "{a} / {b} = {ans} teams. The answer is {ans}.",
        ),
        (
            "div",
            "{n} paid {a} dollars for {b} notebooks. What does one notebook cost?",
            "One notebook costs {a} / {b} = {ans} dollars. The answer is {ans}.",
        ),
    ],
    "multi_step": [
        (
            "add_sub",
            "{n} has {a} {o}, buys {b} more, then gives {c} to {n2}. How many {o} are left?",
            "{n} has {a} + {b} = {r} {o} after buying, then {r} - {c} = {ans}. The answer is {ans}.",
        ),
        (
            "sub_add",
            "{n}'s bakery has {a} rolls, sells {b} in the morning, then bakes {c} more. How many now?",
            "{a} - {b} = {r} after selling, and {r} + {c} = {ans} after baking. The answer is {ans}.",
        ),
        (
            "mul_add",
            "{n} buys {k} packs of {o} with {a} in each pack and finds {c} more. How many {o} now?",
            "{k} * {a} = {r} {o} in the packs, and {r} + {c} = {ans}. The answer is {ans}.",
        ),
        (
            "mul_sub",
            "{n} plants {k} rows of {a} seeds, and birds eat {c} seeds. How many are left?",
            "{n} planted {k} * {a} = {r} seeds, and {r} - {c} = {ans} are left. The answer is {ans}.",
        ),
        (
            "add_mul",
            "For {k} days, {n} reads {a} pages each morning and {b} each night. How many pages in all?",
            "{a} + {b} = {r} pages a day for {n}, and {r} * {k} = {ans}. The answer is {ans}.",
        ),
        (
            "add_sub",
            "{n} had {a} dollars, earned {b} more, and then spent {c} on {o}. How many dollars remain?",
            "{a} + {b} = {r} dollars, then {r} - {c} = {ans}. The answer is {ans}.",
        ),
    ],
}

_ZH: dict[str, list[tuple[str, str, str]]] = {
    "addition": [
        (
            "add",
            "{n}有{a}{m}{o}，{n2}又送来{b}{m}。{n}现在有几{m}？",
            "{a}{m}加{b}{m}，{a} + {b} = {ans}。答案是{ans}。",
        ),
        (
            "add",
            "书架上有{a}本书，{n}放上{b}本，现有几本？",
            "{a} + {b} = {ans}，书架上有{ans}本书。答案是{ans}。",
        ),
        (
            "add",
            "{n}读一本书，先读{a}页，又读{b}页，共读几页？",
            "{a} + {b} = {ans}，共读了{ans}页。答案是{ans}。",
        ),
        (
            "add",
            "{loc}里有{a}{m}{o}，运来{b}{m}后，共有几{m}？",
            "{a} + {b} = {ans}，共有{ans}{m}{o}。答案是{ans}。",
        ),
        (
            "add",
            "{n}上午买{a}{m}{o}，下午买{b}{m}，共买几{m}？",
            "{a} + {b} = {ans}，共买了{ans}{m}。答案是{ans}。",
        ),
        (
            "add",
            "{n}存了{a}元，妈妈给了{b}元，共有几元？",
            "{a} + {b} = {ans}，共有{ans}元。答案是{ans}。",
        ),
    ],
    "subtraction": [
        (
            "sub",
            "{n}有{a}{m}{o}，送给{n2}{b}{m}，还剩几{m}？",
            "原有{a}{m}，送出{b}{m}，{a} - {b} = {ans}。答案是{ans}。",
        ),
        (
            "sub",
            "{loc}有{a}{m}{o}，卖出{b}{m}，还剩多少{m}？",
            "{a} - {b} = {ans}，还剩{ans}{m}。答案是{ans}。",
        ),
        (
            "sub",
            "{n}要做{a}道题，做完了{b}道，还差几道？",
            "{a} - {b} = {ans}，还要做{ans}道。答案是{ans}。",
        ),
        (
            "sub",
            "车上有{a}人，到站后下车{b}人，还有几人？",
            "{a} - {b} = {ans}，车上还有{ans}人。答案是{ans}。",
        ),
        (
            "sub",
            "{n}带了{a}元去{loc}，花了{b}元，还剩几元？",
            "{a} - {b} = {ans}，还剩{ans}元。答案是{ans}。",
        ),
        (
            "sub",
            "一根绳子长{a}米，{n}剪去{b}米，还剩几米？",
            "{a} - {b} = {ans}，还剩{ans}米。答案是{ans}。",
        ),
    ],
    "multiplication": [
        (
            "mul",
            "{n}买了{k}盒{o}，每盒{a}{m}，共有几{m}？",
            "{k}盒，每盒{a}{m}，{a} * {k} = {ans}。答案是{ans}。",
        ),
        (
            "mul",
            "礼堂里有{k}排座位，每排坐{a}人，共坐几人？",
            "{k}排共坐{a} * {k} = {ans}人。答案是{ans}。",
        ),
        (
            "mul",
            "{n}每天跑{a}分钟，跑了{k}天，共跑几分钟？",
            "{a} * {k} = {ans}，共跑{ans}分钟。答案是{ans}。",
        ),
        (
            "mul",
            "一张门票{a}元，{n}买了{k}张，要花多少元？",
            "{a} * {k} = {ans}元。答案是{ans}。",
        ),
        (
            "mul",
            "{n}每袋装{a}{m}{o}，装了{k}袋，共几{m}？",
            "{a} * {k} = {ans}，共装{ans}{m}。答案是{ans}。",
        ),
        (
            "mul",
            "{n}每周存{a}元，存了{k}周，共存多少元？",
            "{a} * {k} = {ans}元。答案是{ans}。",
        ),
    ],
    "division": [
        (
            "div",
            "{n}把{a}{m}{o}平分给{b}人，每人几{m}？",
            "{a} / {b} = {ans}，每人{ans}{m}。答案是{ans}。",
        ),
        (
            "div",
            "老师把{a}{m}{o}分成{b}堆，每堆几{m}？",
            "{a} / {b} = {ans}，每堆{ans}{m}。答案是{ans}。",
        ),
        (
            "div",
            "{n}骑了{a}千米，用了{b}小时，时速几千米？",
            "{a} / {b} = {ans}千米。答案是{ans}。",
        ),
        (
            "div",
            "有{a}名学生，每组{b}人，能分几组？",
            "{a} / {b} = {ans}，能分{ans}组。答案是{ans}。",
        ),
        (
            "div",
            "{n}买{b}本笔记本共花{a}元，每本几元？",
            "{b}本共{a}元，{a} / {b} = {ans}元。答案是{ans}。",
        ),
    ],
    "multi_step": [
        (
            "add_sub",
            "{n}有{a}{m}{o}，又买了{b}{m}，送给{n2}{c}{m}，还剩几{m}？",
            "{a} + {b} = {r}，{r} - {c} = {ans}，还剩{ans}{m}。答案是{ans}。",
        ),
        (
            "sub_add",
            "{loc}有{a}{m}{o}，卖出{b}{m}，运来{c}{m}，现有几{m}？",
            "{a} - {b} = {r}，{r} + {c} = {ans}。答案是{ans}。",
        ),
        (
            "mul_add",
            "{n}买了{k}盒{o}，每盒{a}{m}，另有{c}{m}，一共几{m}？",
            "{a} * {k} = {r}，{r} + {c} = {ans}，一共{ans}{m}。答案是{ans}。",
        ),
        (
            "mul_sub",
            "果园有{k}排树，每排{a}棵，砍了{c}棵，剩几棵？",
            "{a} * {k} = {r}，{r} - {c} = {ans}。答案是{ans}。",
        ),
        (
            "add_mul",
            "{n}每天上午读{a}页，下午读{b}页，{k}天共读几页？",
            "{a} + {b} = {r}，{r} * {k} = {ans}，共读{ans}页。答案是{ans}。",
        ),
        (
            "add_sub",
            "{n}有{a}元，妈妈给了{b}元，又花了{c}元，还剩几元？",
            "{a} + {b} = {r}，{r} - {c} = {ans}。答案是{ans}。",
        ),
    ],
}

_SHORT = {
    "addition": "add",
    "subtraction": "sub",
    "multiplication": "mul",
    "division": "div",
    "multi_step": "multi",
}


def _build_templates() -> tuple[Template, ...]:
    out: list[Template] = []
    for lang, table in (("en", _EN), ("zh", _ZH)):
        for category in CATEGORIES:
            for i, (op, prompt, response) in enumerate(table[category], start=1):
                key = f"{lang}-{_SHORT[category]}-{i}"
                out.append(Template(key, category, lang, op, prompt, response))
    return tuple(out)


TEMPLATES: tuple[Template, ...] = _build_templates()


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------


def _numbers(op: str, rng: random.Random) -> dict[str, int]:
    """Operands, intermediate and final result for one operation kind; all results are >= 0 integers."""
    if op == "add":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return {"a": a, "b": b, "ans": a + b}
    if op == "sub":
        a = rng.randint(20, 99)
        b = rng.randint(10, a - 2)
        return {"a": a, "b": b, "ans": a - b}
    if op == "mul":
        a, k = rng.randint(10, 99), rng.randint(2, 9)
        return {"a": a, "k": k, "ans": a * k}
    if op == "div":
        while True:
            b, q = rng.randint(2, 9), rng.randint(2, 20)
            if b * q >= 10:
                return {"a": b * q, "b": b, "ans": q}
    if op == "add_sub":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        r = a + b
        c = rng.randint(10, min(99, r - 1))
        return {"a": a, "b": b, "r": r, "c": c, "ans": r - c}
    if op == "sub_add":
        a = rng.randint(20, 99)
        b = rng.randint(10, a - 2)
        r = a - b
        c = rng.randint(10, 99)
        return {"a": a, "b": b, "r": r, "c": c, "ans": r + c}
    if op in ("mul_add", "mul_sub"):
        a, k = rng.randint(10, 99), rng.randint(2, 9)
        r = a * k
        if op == "mul_add":
            c = rng.randint(10, 99)
            return {"a": a, "k": k, "r": r, "c": c, "ans": r + c}
        c = rng.randint(10, min(99, r - 1))
        return {"a": a, "k": k, "r": r, "c": c, "ans": r - c}
    if op == "add_mul":
        a, b, k = rng.randint(10, 99), rng.randint(10, 99), rng.randint(2, 9)
        r = a + b
        return {"a": a, "b": b, "r": r, "k": k, "ans": r * k}
    raise ValueError(f"unknown op {op!r}")


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _en_pronouns(gender: str) -> dict[str, str]:
    if gender == "m":
        return {"he": "he", "He": "He", "him": "him", "his": "his"}
    return {"he": "she", "He": "She", "him": "her", "his": "her"}


def _en_pii(first: str, rng: random.Random) -> tuple[str, str]:
    """(full name, full name with contact details)."""
    last = rng.choice(EN_SURNAMES)
    full = f"{first} {last}"
    phone = f"{rng.choice((202, 312, 415, 617, 718, 917))}-555-01{rng.randint(0, 99):02d}"
    email = f"{first.lower()}.{last.lower()}@example.com"
    form = rng.randrange(3)
    if form == 0:
        contact = f"{full} (tel {phone})"
    elif form == 1:
        contact = f"{full} (phone: {phone}, email: {email})"
    else:
        contact = f"{full} ({email}, cell {phone})"
    return full, contact


def _zh_pii(rng: random.Random) -> tuple[str, str]:
    sur, sur_py = rng.choice(ZH_SURNAMES)
    given, given_py = rng.choice(ZH_GIVEN)
    full = sur + given
    phone = rng.choice(("138", "139", "136", "150", "186", "188")) + "".join(
        str(rng.randint(0, 9)) for _ in range(8)
    )
    email = f"{sur_py}{given_py}{rng.randint(10, 99)}@example.com"
    form = rng.randrange(3)
    if form == 0:
        contact = f"{full}（电话{phone}）"
    elif form == 1:
        contact = f"{full}（手机：{phone}，邮箱：{email}）"
    else:
        contact = f"{full}（联系电话 {phone}）"
    return full, contact


def _render(t: Template, nums: dict[str, int], rng: random.Random, pii: bool) -> tuple[str, str]:
    fields: dict[str, str] = {k: str(v) for k, v in nums.items()}
    contact = ""
    if t.lang == "en":
        (first, gender), (second, _) = rng.sample(EN_NAMES, 2)
        fields.update(_en_pronouns(gender))
        fields.update(n=first, n2=second, o=rng.choice(EN_OBJECTS), loc=rng.choice(EN_PLACES))
        if pii:
            fields["n"], contact = _en_pii(first, rng)
    else:
        first, second = rng.sample(ZH_NAMES, 2)
        measure, noun = rng.choice(ZH_OBJECTS)
        fields.update(n=first, n2=second, m=measure, o=noun, loc=rng.choice(ZH_PLACES))
        if pii:
            fields["n"], contact = _zh_pii(rng)
    prompt = t.prompt.format(**fields)
    response = t.response.format(**fields)
    if pii:
        prompt = prompt.replace(fields["n"], contact, 1)
    return prompt, response


# Near-duplicate re-wordings: (old, new) substitutions applied once where present, plus edits that
# always apply (a "please", a punctuation change).
_EN_SUBS: tuple[tuple[str, str], ...] = (
    (" has ", " owns "),
    (" buys ", " purchases "),
    (" gives ", " hands "),
    (" then ", " and then "),
    (" each ", " every "),
    ("how many", "just how many"),
    ("How many", "So how many"),
    (" in total", " altogether"),
    ("There are", "There happen to be"),
)
_ZH_SUBS: tuple[tuple[str, str], ...] = (
    ("一共", "总共"),
    ("共有", "总共有"),
    ("还剩", "还余下"),
    ("现在", "目前"),
    ("又", "再"),
    ("，", ","),
)


def _reword(prompt: str, lang: str, rng: random.Random) -> str:
    subs = _EN_SUBS if lang == "en" else _ZH_SUBS
    edits: list[str] = [f"sub:{i}" for i, (old, _) in enumerate(subs) if old in prompt]
    edits += ["please", "punct"]
    chosen = rng.sample(edits, min(len(edits), rng.choice((1, 1, 2))))
    out = prompt
    for edit in sorted(chosen):  # fixed application order: "please" < "punct" < "sub:*"
        if edit.startswith("sub:"):
            old, new = subs[int(edit[4:])]
            out = out.replace(old, new, 1)
        elif edit == "please":
            if lang == "en":
                out = rng.choice(("Please solve: ", "Please answer this: ")) + out
            else:
                out = rng.choice(("请回答：", "请计算：")) + out
        elif lang == "en":
            out = out[:-1] + rng.choice((" ?", "??", "?!")) if out.endswith("?") else out + "!"
        else:
            out = out[:-1] + rng.choice(("?", "？？", "呢？")) if out.endswith("？") else out + "！"
    if out == prompt:  # cannot happen with the edits above, but keep the guarantee explicit
        out = prompt + (" Please." if lang == "en" else "请回答。")
    return out


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------


def _apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder apportionment of ``total`` by ``weights`` (deterministic)."""
    wsum = sum(weights.values())
    raw = {k: total * w / wsum for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    left = total - sum(counts.values())
    for k in sorted(weights, key=lambda k: (-(raw[k] - counts[k]), list(weights).index(k)))[:left]:
        counts[k] += 1
    return counts


def generate(n: int = 3000, seed: int = 0, zh_share: float = 0.3) -> tuple[list[dict], dict]:
    """Generate ``n`` rows and the ground-truth manifest. Returns ``(rows, manifest)``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0.0 <= zh_share <= 1.0:
        raise ValueError("zh_share must be within [0, 1]")
    rng = random.Random(seed)

    n_exact = round(n * EXACT_DUP_RATE)
    n_near = round(n * NEAR_DUP_RATE)
    n_base = n - n_exact - n_near

    # ---- base (original) rows -------------------------------------------------------------------
    cat_counts = _apportion(n_base, CATEGORY_WEIGHTS)
    categories = [c for c in CATEGORIES for _ in range(cat_counts[c])]
    rng.shuffle(categories)
    n_zh = round(n_base * zh_share)
    langs = ["zh"] * n_zh + ["en"] * (n_base - n_zh)
    rng.shuffle(langs)
    answer_only = set(rng.sample(range(n_base), round(n_base * ANSWER_ONLY_RATE)))
    # Row 0 never carries PII, so every duplicate slot (position >= 1) has an eligible original.
    pii = set(rng.sample(range(1, n_base), min(max(n_base - 1, 0), round(n * PII_RATE))))

    by_kind: dict[tuple[str, str], list[Template]] = {}
    for t in TEMPLATES:
        by_kind.setdefault((t.category, t.lang), []).append(t)

    seen_keys: set[tuple[str, tuple[tuple[str, int], ...]]] = set()
    seen_prompts: set[str] = set()
    base: list[dict[str, Any]] = []
    for i in range(n_base):
        pool = by_kind[(categories[i], langs[i])]
        if i in pii:
            pool = [t for t in pool if "{n}" in t.prompt and "{n}'" not in t.prompt]
        for _attempt in range(10_000):
            t = rng.choice(pool)
            nums = _numbers(t.op, rng)
            key = (t.key, tuple(sorted(nums.items())))
            if key in seen_keys:
                continue  # same template with the same numbers would be a (near) duplicate
            prompt, response = _render(t, nums, rng, i in pii)
            if prompt in seen_prompts:
                continue
            break
        else:  # pragma: no cover - only for absurdly large n
            raise RuntimeError("could not generate a unique problem; n too large for the template pool")
        seen_keys.add(key)
        seen_prompts.add(prompt)
        answer = str(nums["ans"])
        base.append(
            {
                "prompt": prompt,
                "response": answer if i in answer_only else response,
                "answer": answer,
                "category": categories[i],
                "lang": langs[i],
                "_pii": i in pii,
            }
        )

    # ---- interleave duplicates after their originals --------------------------------------------
    first_dup_pos = min(n, max(1, n // 50))
    dup_positions = rng.sample(range(first_dup_pos, n), n_exact + n_near) if n_exact + n_near else []
    kinds = ["exact"] * n_exact + ["near"] * n_near
    rng.shuffle(kinds)
    dup_kind = dict(zip(sorted(dup_positions), kinds, strict=True))

    rows: list[dict] = []
    emitted: list[int] = []  # positions (in rows) of base rows emitted so far
    used_as_original: set[int] = set()
    exact_pairs: list[list[str]] = []
    near_pairs: list[list[str]] = []
    pii_ids: list[str] = []
    next_base = 0
    for pos in range(n):
        row_id = f"mwp-{pos + 1:06d}"
        kind = dup_kind.get(pos)
        if kind:
            eligible = [p for p in emitted if not rows[p]["_pii"]]
            fresh = [p for p in eligible if p not in used_as_original]
            orig_pos = rng.choice(fresh or eligible)
            used_as_original.add(orig_pos)
            orig = rows[orig_pos]
            row = {**orig, "id": row_id}
            if kind == "near":
                row["prompt"] = _reword(orig["prompt"], orig["lang"], rng)
                near_pairs.append([row_id, orig["id"]])
            else:
                exact_pairs.append([row_id, orig["id"]])
        else:
            row = {"id": row_id, **base[next_base]}
            next_base += 1
            emitted.append(pos)
            if row["_pii"]:
                pii_ids.append(row_id)
        rows.append(row)

    out_rows: list[dict] = [
        {k: r[k] for k in ("id", "prompt", "response", "answer", "category", "lang")} for r in rows
    ]
    manifest: dict[str, Any] = {
        "seed": seed,
        "n": n,
        "zh_share": zh_share,
        "category_counts": {c: sum(1 for r in out_rows if r["category"] == c) for c in CATEGORIES},
        "lang_counts": {lang: sum(1 for r in out_rows if r["lang"] == lang) for lang in ("en", "zh")},
        "answer_only_ids": [r["id"] for r in out_rows if r["response"] == r["answer"]],
        "exact_duplicates": exact_pairs,
        "near_duplicates": near_pairs,
        "pii_ids": pii_ids,
    }
    return out_rows, manifest


def to_jsonl(rows: list[dict]) -> str:
    """One JSON object per line (UTF-8 text, non-ASCII kept), trailing newline."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def summary(manifest: dict) -> str:
    cats = ", ".join(f"{c}={k}" for c, k in manifest["category_counts"].items())
    return (
        f"rows={manifest['n']} ({cats}); answer_only={len(manifest['answer_only_ids'])}, "
        f"exact_dups={len(manifest['exact_duplicates'])}, near_dups={len(manifest['near_duplicates'])}, "
        f"pii={len(manifest['pii_ids'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate seeded grade-school math word problems (en/zh).")
    parser.add_argument("--n", type=int, default=3000, help="number of rows (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--zh-share", type=float, default=0.3, help="share of Chinese rows (default 0.3)")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL file")
    parser.add_argument("--manifest", type=Path, default=None, help="optional ground-truth manifest JSON")
    args = parser.parse_args(argv)

    rows, manifest = generate(args.n, args.seed, args.zh_share)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_jsonl(rows), encoding="utf-8")
    if args.manifest is not None:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"mathgen: wrote {args.out}: {summary(manifest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
