"""A simple personal-data detector for the health report: phone numbers, e-mail addresses, Chinese
resident ID numbers (checksum verified) and bank card numbers (Luhn verified).

It flags rows; replacing what it finds is the data optimisation's job (``imts.optimise`` builds the full
engine, with names and consistent synthetic replacements).
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Chinese mobiles (11 digits from 13x-19x), North American numbers (3-3-4 with separators), and
# international numbers written with a leading +.
_PHONE = re.compile(
    r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"
    r"|(?<![\d-])\(?\d{3}\)?[- .]\d{3}[- .]\d{4}(?![\d-])"
    r"|\+\d{1,3}[- ]?\d{2,4}[- ]?\d{3,4}[- ]?\d{3,4}(?!\d)"
)
_CN_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _cn_id_valid(s: str) -> bool:
    total = sum(int(d) * w for d, w in zip(s[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == s[17].upper()


def _luhn(digits: str) -> bool:
    total = 0
    for n, d in enumerate(reversed(digits)):
        v = int(d) * (2 if n % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def find_pii(text: str) -> list[str]:
    """The kinds of personal data in ``text`` (``email``, ``phone``, ``id_number``, ``bank_card``)."""
    kinds = []
    if _EMAIL.search(text):
        kinds.append("email")
    if _PHONE.search(text):
        kinds.append("phone")
    if any(_cn_id_valid(m.group()) for m in _CN_ID.finditer(text)):
        kinds.append("id_number")
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) >= 16 and _luhn(digits) and not _cn_id_valid(digits.ljust(18, "0")[:18]):
            kinds.append("bank_card")
            break
    return kinds
