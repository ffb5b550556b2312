"""Text utilities shared by every package: language detection, the word/CJK tokenizer, normalisation.

A leaf module: it imports nothing of IMTS, so data, agents and evals can all use it without cycles.
"""

from __future__ import annotations

import re
import unicodedata

# CJK Unified Ideographs, Extension A and the compatibility ideographs.
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Latin words and numbers as tokens, each CJK character as a token (Chinese has no spaces).
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3400-\u9fff\uf900-\ufaff]+")
# The metrics' narrower rule (``is_chinese``) counts the unified ideographs only.
_HAN = re.compile(r"[\u4e00-\u9fff]")


def detect_lang(text: str) -> str:
    """'zh' when more than a fifth of the non-space characters are CJK, else 'en'.

    The row language recorded at import; ``search`` first because most rows hold no CJK at all and
    ``findall`` over every row would be the import's hot spot.
    """
    if not CJK.search(text):
        return "en"
    return "zh" if len(CJK.findall(text)) > 0.2 * max(1, len(text.replace(" ", ""))) else "en"


def is_chinese(text: str) -> bool:
    """At least half of the letters are CJK ideographs (how metrics choose a Chinese tokenizer)."""
    letters = [c for c in text if c.isalnum()]
    return bool(letters) and sum(bool(_HAN.match(c)) for c in letters) * 2 >= len(letters)


def tokens(text: str) -> list[str]:
    """NFKC-normalised, lower-cased words and numbers, and single CJK characters (dedup, decontamination)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def normalise(text: str) -> str:
    """``tokens`` joined by single spaces: the key under which two texts count as exact duplicates."""
    return " ".join(tokens(text))


def ngrams(toks: list[str], n: int) -> set[tuple[str, ...]]:
    """Distinct ``n``-grams of a token list."""
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}
