"""Exact and near-duplicate detection: MinHash signatures and LSH banding, vectorised with numpy.

Text -> set of word ``k``-shingles (tokens as in ``core.text.tokens``: words, numbers, single CJK
characters; numbers weighted, see ``shingles``) -> CRC32 of each shingle -> ``num_perm`` MinHash
values with the multiply-shift family ``h(x) = ((a*x + b) mod 2^64) >> 32`` (one numpy pass over all
shingles of a batch of documents, a ``minimum.reduceat`` per document). LSH splits a signature into
``bands`` of ``rows``; documents whose band agrees land in one bucket; every candidate pair is then
verified by its estimated Jaccard similarity (share of equal signature values) against the threshold,
so bucket collisions never reach the result. ``bands``/``rows`` are chosen for the threshold the way
datasketch's MinHashLSH chooses them (minimising the false-positive plus false-negative area), so the
two can be compared like for like.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from imts.core.errors import InputError
from imts.core.text import normalise, tokens

DEFAULT_NUM_PERM = 128
DEFAULT_THRESHOLD = 0.7
DEFAULT_SHINGLE = 2
DEFAULT_NUMBER_WEIGHT = 6
_BATCH = 2_000
_SEED = 1


# Operation words and symbols, English and Chinese (simplified and traditional), by the operation they
# name: "26 minus 33" and "26 plus 33" share every word but the one that decides the answer.
_OPERATIONS: dict[str, str] = {
    **dict.fromkeys(
        ("minus", "subtract", "subtracted", "subtracting", "difference", "-", "−", "减", "減"), "sub"
    ),
    **dict.fromkeys(("plus", "add", "added", "adding", "sum", "+", "加"), "add"),
    **dict.fromkeys(("times", "multiply", "multiplied", "multiplying", "product", "*", "×", "乘"), "mul"),
    **dict.fromkeys(("divide", "divided", "dividing", "quotient", "/", "÷", "除"), "div"),
}
# Words (whole, so "w12" holds no number), numbers with decimals or thousands separators, single CJK
# characters, and operator symbols between numbers or spaces (so "twenty-six" is no subtraction).
_SEMANTIC = re.compile(
    r"\d+(?:[.,]\d+)+(?![^\W_])|[^\W_\u3400-\u9fff]+|[\u3400-\u9fff]|(?<=[\d\s])[-−+*×/÷](?=[\s\d])|[×÷−]"
)


def semantic_tokens(text: str) -> list[str]:
    """The numbers of ``text`` in order and the operations it names (``sub``/``add``/``mul``/``div``),
    interleaved as they occur: "What is 26 minus 33?" -> ``["26", "sub", "33"]``."""
    out: list[str] = []
    for m in _SEMANTIC.finditer(unicodedata.normalize("NFKC", text).lower()):
        t = m.group()
        if t.replace(",", "").replace(".", "").isdigit():
            out.append(t.replace(",", ""))
        elif t in _OPERATIONS:
            out.append(_OPERATIONS[t])
    return out


def exact_key(text: str) -> str:
    """The key under which two texts are exact duplicates: their normalised words and numbers, plus the
    operations they name (normalising drops symbols, and "12 + 30" is not "12 - 30")."""
    return normalise(text) + "\x00" + " ".join(semantic_tokens(text))


def shingles(text: str, k: int = DEFAULT_SHINGLE, number_weight: int = DEFAULT_NUMBER_WEIGHT) -> set[str]:
    """Distinct word ``k``-shingles of ``text`` (the whole text if shorter), plus ``number_weight``
    copies (``...#0``, ``...#1`` ...) of each feature that decides a problem's answer: each number with
    its place among the numbers (``n1=26``, ``n2=33``), each operation named (``op=sub``), and each
    adjacent pair of numbers and operations in order (``26>sub``, ``sub>33``). Without them, two problems
    worded alike but with other numbers, the numbers swapped ("26 minus 33" / "33 minus 26") or another
    operation would look near-identical; a reworded problem with the same numbers and operation keeps them
    all."""
    toks = tokens(text)
    grams = {" ".join(toks[i : i + k]) for i in range(max(1, len(toks) - k + 1))}
    sem = semantic_tokens(text)
    numbers = [t for t in sem if t[0].isdigit()]
    features = {f"n{i}={t}" for i, t in enumerate(numbers)}
    features |= {f"op={t}" for t in sem if not t[0].isdigit()}
    features |= {f"{a}>{b}" for a, b in itertools.pairwise(sem) if a != b}
    grams |= {f"{f}#{j}" for f in features for j in range(number_weight)}
    return grams


def shingle_hashes(
    text: str, k: int = DEFAULT_SHINGLE, number_weight: int = DEFAULT_NUMBER_WEIGHT
) -> np.ndarray:
    """CRC32 hashes of ``shingles(text)``."""
    grams = shingles(text, k, number_weight)
    return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


@functools.lru_cache(maxsize=16)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising false positives + false negatives."""
    if not 0 < threshold < 1:
        raise InputError(f"the near-duplicate threshold must be between 0 and 1, not {threshold}")
    grid = np.linspace(0, 1, 1001)
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1 - (1 - grid**r) ** b
            fp = np.trapezoid(np.where(grid < threshold, p, 0), grid)
            fn = np.trapezoid(np.where(grid >= threshold, 1 - p, 0), grid)
            if fp + fn < best_err:
                best, best_err = (b, r), fp + fn
    return best


class MinHasher:
    """Computes MinHash signatures (uint32, one row per document) for many documents at once."""

    def __init__(
        self, num_perm: int = DEFAULT_NUM_PERM, shingle: int = DEFAULT_SHINGLE, seed: int = _SEED
    ) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle = num_perm, shingle
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for start in range(0, len(texts), _BATCH):
            hashes = [shingle_hashes(t, self.shingle) for t in texts[start : start + _BATCH]]
            out[start : start + len(hashes)] = self.from_hashes(hashes)
        return out

    def from_hashes(self, hashes: list[np.ndarray]) -> np.ndarray:
        lengths = np.fromiter((len(h) for h in hashes), dtype=np.int64, count=len(hashes))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        x = np.concatenate(hashes)
        with np.errstate(over="ignore"):  # wrap-around mod 2^64 is the hash family
            h = (self.a[:, None] * x[None, :] + self.b[:, None]) >> np.uint64(32)
        return np.minimum.reduceat(h, offsets, axis=1).T.astype(np.uint32)


def band_keys(sigs: np.ndarray, band: int, rows: int) -> np.ndarray:
    """LSH bucket key (uint64) of every signature for band ``band`` of ``rows`` values."""
    mix = np.random.default_rng(_SEED + 1).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    part = sigs[:, band * rows : (band + 1) * rows].astype(np.uint64)
    with np.errstate(over="ignore"):
        return (part * mix).sum(axis=1, dtype=np.uint64) ^ np.uint64(band)


def candidate_links(sigs: np.ndarray, threshold: float, bands: int, rows: int) -> np.ndarray:
    """Verified pairs ``(i, j)``, ``j < i``: docs sharing an LSH bucket with estimated Jaccard >= threshold.

    Within a bucket every member is linked to the bucket's first (lowest-index) member.
    """
    found: list[np.ndarray] = []
    for band in range(bands):
        keys = band_keys(sigs, band, rows)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        is_start = np.r_[True, sk[1:] != sk[:-1]]
        rep = order[np.flatnonzero(is_start)][np.cumsum(is_start) - 1]
        mask = order != rep
        if mask.any():
            found.append(np.stack([order[mask], rep[mask]], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    sim = np.empty(len(pairs))
    for start in range(0, len(pairs), 50_000):
        p = pairs[start : start + 50_000]
        sim[start : start + len(p)] = (sigs[p[:, 0]] == sigs[p[:, 1]]).mean(axis=1)
    return pairs[sim >= threshold]


def near_duplicates(
    texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, num_perm: int = DEFAULT_NUM_PERM
) -> dict[int, int]:
    """``{duplicate index: index of an earlier near-identical text}`` over ``texts``."""
    bands, rows = optimal_bands(threshold, num_perm)
    sigs = MinHasher(num_perm).signatures(texts)
    out: dict[int, int] = {}
    for i, j in candidate_links(sigs, threshold, bands, rows).tolist():
        out.setdefault(i, j)
    return out


def near_matches(
    queries: Sequence[str], references: Sequence[str], threshold: float, num_perm: int = DEFAULT_NUM_PERM
) -> dict[int, int]:
    """``{query index: reference index}`` for queries with a near-duplicate among the references."""
    bands, rows = optimal_bands(threshold, num_perm)
    hasher = MinHasher(num_perm)
    sigs = np.concatenate([hasher.signatures(references), hasher.signatures(queries)])
    n_ref = len(references)
    out: dict[int, int] = {}
    for i, j in candidate_links(sigs, threshold, bands, rows).tolist():
        if i >= n_ref > j:  # the lowest index of a bucket is a reference whenever one is in it
            out.setdefault(i - n_ref, j)
    return out


def exact_duplicates(keys: Sequence[str]) -> dict[int, int]:
    """``{index: index of the first equal key}`` for repeated keys (normalised texts)."""
    first: dict[str, int] = {}
    out: dict[int, int] = {}
    for i, k in enumerate(keys):
        if k in first:
            out[i] = first[k]
        else:
            first[k] = i
    return out


def examples(
    rows: Sequence[dict[str, Any]], pairs: dict[int, int], text: Any, kind: str, n: int = 5
) -> list[dict[str, Any]]:
    return [
        {"id": rows[i]["id"], "duplicate_of": rows[j]["id"], "kind": kind, "text": text(rows[i])[:200]}
        for i, j in list(pairs.items())[:n]
    ]
