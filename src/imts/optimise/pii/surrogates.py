"""Synthetic replacement: each original value becomes a format-valid surrogate, the same one everywhere.

Presidio's anonymizer replaces every e-mail with one fake value (presidio #633) and loses which mentions
were the same person (#1102). Here the surrogate of a value is drawn from a generator seeded by
HMAC-SHA256(project secret, type + value): the same value gives the same surrogate in every row, split and
run of one project, and nothing links surrogates across projects (another secret, other surrogates).

Format-valid means: an identity number passes GB 11643 (checksum, real region code, a real birth date)
and keeps the original's sex; a phone number stays a valid number of the same kind (mobile / landline)
and country, written with the same separators; a bank card keeps its issuer prefix and passes Luhn; a
credit code passes GB 32100; a Chinese name becomes a Chinese name of the same length, an English name an
English name of the same gender.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import re
from datetime import date, timedelta

import phonenumbers
from faker import Faker
from faker.providers.ssn.zh_CN import Provider as _ZhSsn
from stdnum import luhn
from stdnum.cn import ric, uscc

from imts.optimise.pii import recognizers as r
from imts.optimise.pii.lexicon import EN_FIRST, EN_FIRST_FEMALE, EN_LAST, ZH_GIVEN, ZH_SURNAMES

_AREAS = [a for a in _ZhSsn.area_codes if not a.endswith("00")]
_ZH_SINGLE = sorted(s for s in ZH_SURNAMES if len(s) == 1)
_ZH_DOUBLE = sorted(s for s in ZH_SURNAMES if len(s) == 2)
_ZH_GIVEN = sorted(ZH_GIVEN)
_EN_MALE = sorted(EN_FIRST - EN_FIRST_FEMALE)
_EN_FEMALE = sorted(EN_FIRST_FEMALE)
_EN_LAST = sorted(EN_LAST)
_PUBLIC_MAIL = {"gmail.com", "qq.com", "163.com", "126.com", "outlook.com", "hotmail.com", "yahoo.com",
                "sina.com", "foxmail.com", "icloud.com", "139.com", "sohu.com", "aliyun.com"}  # fmt: skip
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


class Surrogates:
    """Original -> surrogate for one project; remembers what it gave so that two originals never share a
    surrogate and no surrogate equals an original it has seen."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.mapping: dict[tuple[str, str], str] = {}
        self._given: set[str] = set()
        self._zh = Faker("zh_CN")
        self._en = Faker("en_US")

    def get(self, entity: str, original: str) -> str:
        key = (entity, original)
        if key in self.mapping:
            return self.mapping[key]
        for salt in range(1000):
            value = self._make(entity, original, self._rng(entity, original, salt))
            if value != original and value not in self._given and (entity, value) not in self.mapping:
                break
        self.mapping[key] = value
        self._given.add(value)
        return value

    def _rng(self, entity: str, original: str, salt: int) -> random.Random:
        digest = hmac.new(self.secret, f"{entity}\0{original}\0{salt}".encode(), hashlib.sha256).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))

    def _make(self, entity: str, original: str, rng: random.Random) -> str:
        make = {
            r.CN_ID: _cn_id,
            r.PHONE: _phone,
            r.BANK_CARD: _card,
            r.USCC: _uscc,
            r.PASSPORT: _passport,
            r.IP: _ip,
            r.PERSON: _person,
        }.get(entity)
        if make is not None:
            return make(original, rng)
        if entity == r.EMAIL:
            return self._email(original, rng)
        if entity == r.ADDRESS:
            return self._address(original, rng)
        return _digits_like(original, rng, 0)

    def _email(self, original: str, rng: random.Random) -> str:
        domain = original.rsplit("@", 1)[-1].lower()
        domain = (
            domain if domain in _PUBLIC_MAIL else rng.choice(("example.com", "example.org", "example.net"))
        )
        local = re.sub(r"[^a-z.]", "", f"{rng.choice(_EN_MALE + _EN_FEMALE)}.{rng.choice(_EN_LAST)}".lower())
        return f"{local}{rng.randint(1, 999)}@{domain}"

    def _address(self, original: str, rng: random.Random) -> str:
        if re.search(r"[\u4e00-\u9fff]", original):
            self._zh.seed_instance(rng.getrandbits(64))
            z = self._zh
            return f"{z.province()}{z.city()}{z.district()}区{z.street_name()}{rng.randint(1, 999)}号"
        self._en.seed_instance(rng.getrandbits(64))
        e = self._en
        text = f"{rng.randint(1, 9999)} {e.street_name()}"
        if original.count(",") >= 1:
            text += f", {e.city()}"
        if re.search(r",\s*[A-Z]{2}", original):
            text += f", {e.state_abbr()} {e.zipcode()}"
        return text


def _digits_like(original: str, rng: random.Random, keep: int) -> str:
    """``original`` with every digit after the first ``keep`` digits drawn anew (separators kept)."""
    out, seen = [], 0
    for ch in original:
        if ch.isdigit():
            out.append(ch if seen < keep else str(rng.randrange(10)))
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def _cn_id(original: str, rng: random.Random) -> str:
    sex = int(original[16]) % 2  # odd: male, even: female (GB 11643)
    while True:
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        order = rng.randrange(100) * 10 + rng.choice([d for d in range(10) if d % 2 == sex])
        body = f"{rng.choice(_AREAS)}{born:%Y%m%d}{order:03d}"
        number = body + ric.calc_check_digit(body + "0")  # stdnum drops the last character
        if r.valid_cn_id(number):
            return number


def _phone(original: str, rng: random.Random) -> str:
    region, number = phone_region(original)
    kind = phonenumbers.number_type(number)
    digits = re.sub(r"\D", "", original)
    national = str(number.national_number)
    # Keep the country code, the trunk 0 and the operator / area prefix: the kind and place stay.
    prefix = len(digits) - len(national) + (3 if kind == phonenumbers.PhoneNumberType.MOBILE else 2)
    if region == "US" and national[3:6] == "555":
        prefix = len(digits) - len(national) + 8  # 555-01XX stays in the fictional range
    for _ in range(200):
        cand = _digits_like(original, rng, prefix)
        try:
            parsed = phonenumbers.parse(cand, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) == kind:
            return cand
    example = phonenumbers.example_number_for_type(region, kind)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_region(text: str) -> tuple[str, phonenumbers.PhoneNumber]:
    """The region a detected phone number was read with, and the parsed number."""
    digits = re.sub(r"\D", "", text)
    if text.strip().startswith(("+", "00")):
        number = phonenumbers.parse(text if text.strip().startswith("+") else "+" + digits[2:], None)
        return phonenumbers.region_code_for_number(number) or "ZZ", number
    region = "CN" if digits.startswith(("0", "1")) and len(digits) >= 10 and "(" not in text else "US"
    return region, phonenumbers.parse(text, region)


def _card(original: str, rng: random.Random) -> str:
    digits = re.sub(r"\D", "", original)
    cand = _digits_like(original, rng, 6)
    body = re.sub(r"\D", "", cand)[:-1]
    check = luhn.calc_check_digit(body)
    at = max(i for i, ch in enumerate(cand) if ch.isdigit())
    out = cand[:at] + check + cand[at + 1 :]
    assert len(re.sub(r"\D", "", out)) == len(digits)
    return out


def _uscc(original: str, rng: random.Random) -> str:
    body = original[:8] + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def _passport(original: str, rng: random.Random) -> str:
    return "".join(str(rng.randrange(10)) if c.isdigit() else c for c in original)


def _ip(original: str, rng: random.Random) -> str:
    addr = ipaddress.ip_address(original)
    if addr.version == 6:
        return str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)))
    if addr.is_private:
        return str(ipaddress.IPv4Address((10 << 24) | rng.getrandbits(24)))
    # Shared address space (100.64.0.0/10): no one's public address.
    return str(ipaddress.IPv4Address((100 << 24) | (64 << 16) | rng.getrandbits(22)))


def _person(original: str, rng: random.Random) -> str:
    if re.search(r"[\u4e00-\u9fff]", original):
        double = original[:2] in ZH_SURNAMES
        surname = rng.choice(_ZH_DOUBLE if double else _ZH_SINGLE)
        n_given = len(original) - len(surname)
        return surname + "".join(rng.choice(_ZH_GIVEN) for _ in range(max(1, n_given)))
    words = original.split()
    first_at = 1 if words[0].rstrip(".") in ("Mr", "Mrs", "Ms", "Miss", "Dr", "Prof") else 0
    first = words[first_at]
    pool = _EN_FEMALE if first in EN_FIRST_FEMALE else _EN_MALE
    words[first_at] = rng.choice(pool)
    words[-1] = rng.choice(_EN_LAST)
    return " ".join(words)


def format_ok(entity: str, value: str, original: str) -> bool:
    """Whether ``value`` is a well-formed surrogate for ``original`` (the checks the module promises)."""
    if entity == r.CN_ID:
        return r.valid_cn_id(value) and int(value[16]) % 2 == int(original[16]) % 2
    if entity == r.PHONE:
        region, orig = phone_region(original)
        new = phonenumbers.parse(value, region)
        return phonenumbers.is_valid_number(new) and phonenumbers.number_type(
            new
        ) == phonenumbers.number_type(orig)
    if entity == r.BANK_CARD:
        d = re.sub(r"\D", "", value)
        return luhn.is_valid(d) and d[:6] == re.sub(r"\D", "", original)[:6]
    if entity == r.USCC:
        return uscc.is_valid(value)
    if entity == r.EMAIL:
        return re.fullmatch(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}", value) is not None
    if entity == r.IP:
        return ipaddress.ip_address(value).version == ipaddress.ip_address(original).version
    if entity == r.PASSPORT:
        return re.sub(r"[0-9]", "0", value) == re.sub(r"[0-9]", "0", original)  # same letters, same shape
    if entity == r.PERSON:
        if re.search(r"[\u4e00-\u9fff]", original):
            return len(value) == len(original) and (value[0] in ZH_SURNAMES or value[:2] in ZH_SURNAMES)
        return all(w[:1].isupper() for w in value.split())
    return bool(value)
