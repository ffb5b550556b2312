"""Detection through Presidio's ``AnalyzerEngine`` with IMTS's recognizers and no NLP model, and
replacement of what it finds with consistent surrogates.

``AnalyzerEngine()`` without arguments builds a spaCy pipeline and exits when it cannot download
``en_core_web_lg`` (presidio #1447). Here it gets Presidio's ``NoOpNlpEngine`` (no model, no tokens) and a
registry holding only :mod:`imts.optimise.pii.recognizers`, for the codes ``en`` and ``zh``: nothing is
downloaded, and the same engine runs offline on a laptop or in an air-gapped cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine

from imts.core.text import detect_lang
from imts.optimise.pii.recognizers import ENTITIES, recognizers
from imts.optimise.pii.surrogates import Surrogates

LANGUAGES = ("en", "zh")
_TITLES = ("Mr", "Mrs", "Ms", "Miss", "Dr", "Prof")
THRESHOLD = 0.5


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int
    score: float
    text: str


@lru_cache(maxsize=1)
def analyzer() -> AnalyzerEngine:
    """The process's analyzer (built once: building compiles every pattern)."""
    registry = RecognizerRegistry(supported_languages=list(LANGUAGES))
    for lang in LANGUAGES:
        for rec in recognizers(lang):
            registry.add_recognizer(rec)
    nlp = NoOpNlpEngine(models=[{"lang_code": lang, "model_name": "none"} for lang in LANGUAGES])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=list(LANGUAGES))


def find(text: str, entities: tuple[str, ...] = ENTITIES, threshold: float = THRESHOLD) -> list[Span]:
    """Personal data in ``text``, without overlaps (the higher score, then the longer span wins)."""
    if not text:
        return []
    found = analyzer().analyze(
        text, language=detect_lang(text), entities=list(entities), score_threshold=threshold
    )
    kept: list[Span] = []
    for res in sorted(found, key=lambda x: (-x.score, -(x.end - x.start), x.start)):
        if all(res.end <= k.start or res.start >= k.end for k in kept):
            kept.append(Span(res.entity_type, res.start, res.end, res.score, text[res.start : res.end]))
    return sorted(kept, key=lambda s: s.start)


class Replacer:
    """Finds and replaces personal data in texts, consistently for one project secret."""

    def __init__(self, secret: bytes, entities: tuple[str, ...] = ENTITIES) -> None:
        self.surrogates = Surrogates(secret)
        self.entities = entities
        self.counts: dict[str, int] = {}

    def replace(self, text: str) -> tuple[str, list[Span]]:
        spans = find(text, self.entities)
        out, at = [], 0
        for span in spans:
            out += [text[at : span.start], self.surrogates.get(span.entity, span.text)]
            at = span.end
            self.counts[span.entity] = self.counts.get(span.entity, 0) + 1
        out.append(text[at:])
        return "".join(out), spans

    def replace_all(self, texts: list[str]) -> tuple[list[str], list[Span]]:
        """Texts that belong together (one row's messages): what ``replace`` does, and then a person's
        first name standing alone ("Lily Lewis ... Lily pays") becomes the first name of that person's
        surrogate, so the short mention neither survives nor turns into somebody else."""
        done = [self.replace(t) for t in texts]
        aliases: dict[str, str] = {}
        for _, spans in done:
            for span in spans:
                words = span.text.split()
                if span.entity == "PERSON" and len(words) >= 2 and words[0].isalpha():
                    first = words[1] if words[0].rstrip(".") in _TITLES else words[0]
                    new = self.surrogates.get("PERSON", span.text).split()
                    aliases[first] = new[1] if words[0].rstrip(".") in _TITLES else new[0]
        spans_all = [s for _, ss in done for s in ss]
        if not aliases:
            return [t for t, _ in done], spans_all
        pattern = re.compile(r"(?<![A-Za-z])(" + "|".join(map(re.escape, aliases)) + r")(?![A-Za-z])")
        return [pattern.sub(lambda m: aliases[m.group(1)], t) for t, _ in done], spans_all

    def mapping(self) -> list[dict[str, str]]:
        """Every replacement made: entity, original, surrogate (what the encrypted mapping holds)."""
        return [
            {"entity": e, "original": o, "surrogate": s}
            for (e, o), s in sorted(self.surrogates.mapping.items())
        ]


def fernet_key(passphrase: str) -> bytes:
    """A Fernet key from an admin's passphrase (or a key made by ``new_mapping_key``)."""
    return base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())


def encrypt_mapping(mapping: list[dict[str, str]], passphrase: str) -> bytes:
    from cryptography.fernet import Fernet

    return Fernet(fernet_key(passphrase)).encrypt(json.dumps(mapping, ensure_ascii=False).encode())


def decrypt_mapping(blob: bytes, passphrase: str) -> list[dict[str, str]]:
    """The mapping back, or ``InvalidToken`` for a wrong passphrase."""
    from cryptography.fernet import Fernet

    return list(json.loads(Fernet(fernet_key(passphrase)).decrypt(blob)))
