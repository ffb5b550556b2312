"""IMTS's own Presidio recognizers for personal data in Chinese and English, none of which needs a model.

Presidio ships no recognizer for mainland-China identifiers, and its name and address detection needs a
spaCy model it downloads (presidio #1447). These recognizers are rules plus checks: a regular expression
finds candidates, a validator keeps the real ones (GB 11643 checksum and birth date, Luhn and an issuer
prefix, GB 32100 checksum, ``phonenumbers`` validity and kind, ``ipaddress``), and words around a
candidate raise or lower its score where the pattern alone is ambiguous (passports, Chinese names).

Boundaries are written as look-arounds on ASCII digits and letters, never ``\\b``: in Python ``\\b``
treats CJK characters as word characters, so ``\\b`` would miss ``电话13812345678``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date

import phonenumbers
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from stdnum import luhn
from stdnum.cn import ric, uscc

from imts.optimise.pii.lexicon import (
    EN_FIRST,
    EN_LAST,
    ZH_GIVEN,
    ZH_NAME_AFTER,
    ZH_NAME_BEFORE,
    ZH_SURNAMES,
)

PERSON = "PERSON"
PHONE = "PHONE_NUMBER"
EMAIL = "EMAIL_ADDRESS"
CN_ID = "CN_RESIDENT_ID"
BANK_CARD = "BANK_CARD"
USCC = "CN_USCC"
PASSPORT = "PASSPORT"
ADDRESS = "ADDRESS"
IP = "IP_ADDRESS"
ENTITIES = (PERSON, PHONE, EMAIL, CN_ID, BANK_CARD, USCC, PASSPORT, ADDRESS, IP)
STRUCTURED = (PHONE, EMAIL, CN_ID, BANK_CARD, USCC, PASSPORT, IP)

_ND = r"(?<![0-9A-Za-z])"  # not preceded by a digit or ASCII letter
_NA = r"(?![0-9A-Za-z])"  # not followed by one
_NEG_CONTEXT = (
    "订单",
    "单号",
    "order",
    "tracking",
    "invoice",
    "发票",
    "流水",
    "编号",
    "快递",
    "ref",
    "imei",
    "isbn",
    "sku",
    "serial",
)

Check = Callable[[re.Match[str], str], float | None]


def _window(text: str, start: int, size: int = 14) -> str:
    return text[max(0, start - size) : start].lower()


class RuleRecognizer(LocalRecognizer):
    """A regular expression, a check that scores each match (None drops it), and one entity type."""

    def __init__(self, entity: str, pattern: str, check: Check, name: str, language: str) -> None:
        self.regex = re.compile(pattern)
        self.check = check
        self.trim = _trim_zh_address if name == "imts_zh_address" else None
        super().__init__(supported_entities=[entity], name=name, supported_language=language)

    def load(self) -> None:  # nothing to load: that is the point
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found = []
        pos = 0
        while (m := self.regex.search(text, pos)) is not None:
            score = self.check(m, text)
            if score is None:  # "Contact Emily Davis": the next try starts inside a rejected match
                pos = m.start() + 1
                continue
            start, end = m.span()
            if self.trim is not None:
                start = self.trim(text, start, end)
            found.append(RecognizerResult(self.supported_entities[0], start, end, score))
            pos = max(end, m.start() + 1)
        return found


# ---- checks -------------------------------------------------------------------------------------


def _email(m: re.Match[str], text: str) -> float | None:
    return 1.0


def valid_cn_id(number: str) -> bool:
    """GB 11643: 17 digits, a check character, and a real birth date since 1900. The region is not
    looked up: stdnum's table of places misses codes that are in use (500103, 350203 ...)."""
    number = number.upper()
    if not re.fullmatch(r"[1-9][0-9]{16}[0-9X]", number) or ric.calc_check_digit(number) != number[-1]:
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= date.today()


def _cn_id(m: re.Match[str], text: str) -> float | None:
    return 1.0 if valid_cn_id(m.group(0)) else None


_CARD_PREFIX = re.compile(r"^(?:62|4|5[1-5]|2[2-7]|3[47]|35|60|65)")


def _card(m: re.Match[str], text: str) -> float | None:
    digits = re.sub(r"[ -]", "", m.group(0))
    if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits) or not luhn.is_valid(digits):
        return None
    if valid_cn_id(digits):  # an identity number that happens to pass Luhn
        return None
    if any(w in _window(text, m.start(), 10) for w in _NEG_CONTEXT):
        return None
    return 0.9


def _uscc(m: re.Match[str], text: str) -> float | None:
    return 1.0 if uscc.is_valid(m.group(0)) else None


def _ip(m: re.Match[str], text: str) -> float | None:
    try:
        addr = ipaddress.ip_address(m.group(0))
    except ValueError:
        return None
    if addr.version == 4 and re.search(
        r"(?<![a-z])(?:v|version|版本|ver\.?)\s*$", _window(text, m.start(), 10)
    ):
        return None
    return 0.95


_PASSPORT_WORDS = ("passport", "护照", "passeport", "pass no", "旅行证件")


def _passport(m: re.Match[str], text: str) -> float | None:
    # A letter and eight digits is also a product or order code: only with a passport word near it.
    return 0.95 if any(w in _window(text, m.start(), 24) for w in _PASSPORT_WORDS) else None


def _phone_check(region: str) -> Check:
    def check(m: re.Match[str], text: str) -> float | None:
        raw = m.group(0)
        digits = re.sub(r"\D", "", raw)
        if any(w in _window(text, m.start(), 10) for w in _NEG_CONTEXT):
            return None
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        kind = phonenumbers.number_type(number)
        if region == "CN" and not raw.startswith("+") and not raw.startswith("00"):
            # Without a trunk 0 a national number is a mobile or nothing (dates and order numbers
            # like 20231127001 parse as Guangzhou landlines otherwise).
            mobile = kind in (
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
            )
            if not (digits.startswith("0") or (digits.startswith("1") and mobile)):
                return None
        return 0.95

    return check


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def _en_name(m: re.Match[str], text: str) -> float | None:
    first, last = m.group("first"), m.group("last")
    if last in _EN_STOP or first in _EN_STOP:
        return None
    if m.group("title"):
        return 0.9
    if first in EN_FIRST and (last in EN_LAST or last.endswith(("son", "sen", "ez", "ski", "ley", "ton"))):
        return 0.85
    return None


_EN_STOP = {
    "Street",
    "Avenue",
    "Road",
    "Lane",
    "Drive",
    "Park",
    "Center",
    "Hospital",
    "University",
    "Court",
    "Way",
    "Place",
    "Terrace",
    "Square",
    "Boulevard",
}


_ADDRESS_CUES = re.compile(
    r".{0,6}?(?:寄到|送到|寄往|寄给|住在|住址|地址|位于|搬到|来自|家住|住|在|到|于|是|从)"
)


def _trim_zh_address(text: str, start: int, end: int) -> int:
    """Drop the words before a Chinese address that the lazy pattern took along (请寄到, 住在 ...)."""
    cue = _ADDRESS_CUES.match(text, start, end)
    return cue.end() if cue is not None and cue.end() < end - 4 else start


def _address(m: re.Match[str], text: str) -> float | None:
    return 0.85  # the pattern itself is specific: a street, a number and 号 / a street type


# ---- patterns -----------------------------------------------------------------------------------

_HAN = "\u4e00-\u9fff"
_ZH_SURNAME = "|".join(sorted(ZH_SURNAMES, key=len, reverse=True))
_ZH_GIVEN = "".join(sorted(ZH_GIVEN))
# Given name of two characters first, so 张伟明 is one name, not 张伟 followed by 明.
ZH_NAME = rf"(?:{_ZH_SURNAME})[{_ZH_GIVEN}]{{1,2}}"
EN_NAME = (
    r"(?<![A-Za-z])(?:(?P<title>Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+)?(?P<first>[A-Z][a-z]+)"
    r"(?:\s+[A-Z]\.)?\s+(?P<last>[A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?![A-Za-z])"
)
_ZH_ADMIN = rf"(?:[{_HAN}]{{2,6}}?(?:省|自治区))?(?:[{_HAN}]{{1,6}}?市)?(?:[{_HAN}]{{1,6}}?(?:区|县|旗))?"
ZH_ADDRESS = (
    rf"{_ZH_ADMIN}(?:[{_HAN}]{{1,6}}?(?:镇|乡|街道))?[{_HAN}0-9]{{1,10}}?(?:路|街|大道|巷|胡同)(?:[一二三四五六七八九十]段)?"
    rf"[0-9]{{1,5}}(?:号|弄)(?:[0-9]{{1,4}}(?:号楼|栋|幢|单元|楼|室|层))*(?:[0-9]{{1,5}}(?:室|号))?"
)
EN_ADDRESS = (
    r"(?<![0-9A-Za-z])[0-9]{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}"
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.?|Court|Ct\.?|Way|Place|Pl\.?)"
    r"(?:,?\s+(?:Apt|Suite|Unit)\.?\s*#?[0-9A-Za-z]+)?(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)?"
    r"(?:,\s*[A-Z]{2}(?:\s+[0-9]{5}(?:-[0-9]{4})?)?)?"
)
PATTERNS: list[tuple[str, str, str, Check]] = [
    (
        EMAIL,
        "email",
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z])",
        _email,
    ),
    (CN_ID, "cn_resident_id", rf"{_ND}[1-9][0-9]{{16}}[0-9Xx]{_NA}", _cn_id),
    (USCC, "cn_uscc", rf"{_ND}[0-9A-HJ-NPQRTUWXY]{{2}}[0-9]{{6}}[0-9A-HJ-NPQRTUWXY]{{10}}{_NA}", _uscc),
    (
        BANK_CARD,
        "bank_card",
        rf"{_ND}[0-9]{{4}}(?:[ -][0-9]{{4}}){{2}}[ -][0-9]{{1,4}}(?:[ -][0-9]{{1,3}})?{_NA}"
        rf"|{_ND}[0-9]{{13,19}}{_NA}",
        _card,
    ),
    (
        PHONE,
        "cn_phone",
        rf"{_ND}(?:(?:\+|00)86[ -]?)?"  # mobile, or trunk 0 + area code + landline
        rf"(?:1[3-9][0-9](?:[ -]?[0-9]{{4}}){{2}}|0[1-9][0-9]{{1,2}}[ -]?[0-9]{{3,4}}[ -]?[0-9]{{4}}){_NA}",
        _phone_check("CN"),
    ),
    (
        PHONE,
        "intl_phone",
        rf"{_ND}(?:\+|00)(?:[1-9][0-9]{{0,2}})[ .-]?\(?[0-9]{{1,4}}\)?(?:[ .-]?[0-9]{{2,4}}){{2,4}}{_NA}",
        _phone_check("ZZ"),
    ),
    (
        PHONE,
        "us_phone",
        rf"{_ND}(?:\([2-9][0-9]{{2}}\)\s?|[2-9][0-9]{{2}}[-. ])[2-9][0-9]{{2}}[-. ][0-9]{{4}}{_NA}",
        _phone_check("US"),
    ),
    (
        IP,
        "ip",
        r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?!\.?[0-9])|(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])",
        _ip,
    ),
    (PASSPORT, "passport", rf"{_ND}(?:[EGDSP][A-Z]?[0-9]{{7,8}}|[A-Z][0-9]{{8}}|[0-9]{{9}}){_NA}", _passport),
    (PERSON, "zh_name", ZH_NAME, _address),
    (PERSON, "en_name", EN_NAME, _en_name),
    (ADDRESS, "zh_address", ZH_ADDRESS, _address),
    (ADDRESS, "en_address", EN_ADDRESS, _address),
]


class ZhNameRecognizer(RuleRecognizer):
    """Chinese names: a common surname and one or two given-name characters, kept only between
    boundaries (punctuation, non-Chinese text, or words that surround names: 叫, 联系人, 先生, 说 ...).
    Tries the two-character given name first, then one."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found: list[RecognizerResult] = []
        pos = 0
        surname = re.compile(rf"(?:{_ZH_SURNAME})")
        while (m := surname.search(text, pos)) is not None:
            hit = None
            for n in (2, 1):
                end = m.end() + n
                given = text[m.end() : end]
                named = len(given) == n and all(c in ZH_GIVEN for c in given)
                if named and self._bounded(text, m.start(), end):
                    hit = RecognizerResult(PERSON, m.start(), end, 0.85)
                    break
            if hit is not None:
                found.append(hit)
                pos = hit.end
            else:
                pos = m.start() + 1
        return found

    @staticmethod
    def _bounded(text: str, start: int, end: int) -> bool:
        before, after = text[max(0, start - 4) : start], text[end : end + 3]
        left = not before or not _is_han(before[-1]) or any(before.endswith(w) for w in ZH_NAME_BEFORE)
        right = not after or not _is_han(after[0]) or any(after.startswith(w) for w in ZH_NAME_AFTER)
        return left and right


def recognizers(language: str) -> list[LocalRecognizer]:
    """Every IMTS recognizer, for one Presidio language code (the same rules serve both languages:
    Chinese rows hold English names and e-mails, English rows hold Chinese addresses)."""
    out: list[LocalRecognizer] = []
    for entity, name, pattern, check in PATTERNS:
        cls = ZhNameRecognizer if name == "zh_name" else RuleRecognizer
        out.append(cls(entity, pattern, check, f"imts_{name}", language))
    return out
