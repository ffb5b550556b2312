"""Numbers written in words, English and Chinese, to exact fractions.

``twenty-five`` -> 25, ``three hundred and twenty-five`` -> 325, ``三百二十五`` -> 325, ``两万零三`` -> 20003,
``三分之一`` -> 1/3, ``百分之二十五`` -> 25 (with a ``%`` unit), ``二点五`` -> 5/2. Models answer in words as
often as in digits; an exact-match metric that only reads digits marks those answers wrong.
"""

from __future__ import annotations

import re
from fractions import Fraction

_EN_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_EN_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_EN_SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9}
_EN_FRACTIONS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4}
_EN_WORD = "|".join(sorted([*_EN_UNITS, *_EN_TENS, *_EN_SCALES, "hundred", "minus", "negative"], key=len))
# A run of number words joined by spaces, hyphens or "and": "three hundred and twenty-five".
EN_NUMBER = re.compile(
    rf"\b(?:{_EN_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_EN_WORD}))*\b(?:\s+(?:{'|'.join(_EN_FRACTIONS)})\b)?",
    re.IGNORECASE,
)

_ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_ZH_SMALL = {"十": 10, "百": 100, "千": 1000}
_ZH_BIG = {"万": 10**4, "亿": 10**8}
_ZH_CHARS = "".join([*_ZH_DIGITS, *_ZH_SMALL, *_ZH_BIG])
ZH_NUMBER = re.compile(
    rf"(?:负)?(?:百分之)?[{_ZH_CHARS}]+(?:点[{''.join(_ZH_DIGITS)}]+)?(?:分之[{_ZH_CHARS}]+)?"
)


def parse_english(text: str) -> Fraction | None:
    """``twenty-five`` -> 25; ``two thirds`` -> 2/3; None when the words are not a number."""
    words = [w for w in re.split(r"[\s-]+", text.lower().strip()) if w and w != "and"]
    if not words:
        return None
    sign = 1
    if words[0] in ("minus", "negative"):
        sign, words = -1, words[1:]
    denominator = 1
    if words and words[-1] in _EN_FRACTIONS:
        denominator = _EN_FRACTIONS[words.pop()]
        if not words:
            return None
    total, current, seen = 0, 0, False
    for w in words:
        if w in _EN_UNITS:
            current += _EN_UNITS[w]
        elif w in _EN_TENS:
            current += _EN_TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in _EN_SCALES:
            total += (current or 1) * _EN_SCALES[w]
            current = 0
        else:
            return None
        seen = True
    if not seen:
        return None
    return Fraction(sign * (total + current), denominator)


def _zh_integer(text: str) -> int | None:
    if not text:
        return None
    if all(c in _ZH_DIGITS for c in text) and len(text) > 1:  # 二零二四: digit by digit
        return int("".join(str(_ZH_DIGITS[c]) for c in text))
    total, section, digit = 0, 0, None
    for c in text:
        if c in _ZH_DIGITS:
            digit = _ZH_DIGITS[c]
        elif c in _ZH_SMALL:
            section += (1 if digit is None else digit) * _ZH_SMALL[c]  # 十二: a leading 十 means 一十
            digit = None
        elif c in _ZH_BIG:
            section += digit or 0
            total = (total + section) * _ZH_BIG[c] if c == "亿" else total + section * _ZH_BIG[c]
            section, digit = 0, None
        else:
            return None
    return total + section + (digit or 0)


def parse_chinese(text: str) -> tuple[Fraction, bool] | None:
    """``三百二十五`` -> (325, False); ``百分之二十五`` -> (25, True): the flag marks a percentage."""
    text = text.strip()
    sign = 1
    if text.startswith("负"):
        sign, text = -1, text[1:]
    percent = text.startswith("百分之")
    if percent:
        text = text[3:]
    if "分之" in text:  # 三分之一: the denominator comes first
        den_text, num_text = text.split("分之", 1)
        den, num = _zh_integer(den_text), _zh_integer(num_text)
        if den is None or num is None or den == 0:
            return None
        return Fraction(sign * num, den), percent
    whole_text, _, decimals = text.partition("点")
    whole = _zh_integer(whole_text) if whole_text else 0
    if whole is None:
        return None
    value = Fraction(whole)
    if decimals:
        value += Fraction(int("".join(str(_ZH_DIGITS[c]) for c in decimals)), 10 ** len(decimals))
    return sign * value, percent
