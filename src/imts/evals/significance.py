"""Paired significance between models evaluated on the same items, win rates and a Bradley–Terry ranking.

Both models answered the same items, so the tests are paired: McNemar on the discordant pairs for
accuracy (exact binomial below 25 discordant pairs, the chi-square with continuity correction above) and
a paired bootstrap over items for any score.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class McNemar:
    """McNemar's test. ``b``: items only model A got right; ``c``: only model B."""

    b: int
    c: int
    p_value: float
    method: str  # "exact" | "chi2"


def _binom_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial p-value of k successes in n trials at p = 0.5."""
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool], exact_below: int = 25) -> McNemar:
    """Did accuracy change between A and B on the same items?"""
    if len(correct_a) != len(correct_b):
        raise ValueError("both models must be scored on the same items")
    b = sum(a and not bb for a, bb in zip(correct_a, correct_b, strict=True))
    c = sum(bb and not a for a, bb in zip(correct_a, correct_b, strict=True))
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, "exact")
    if n < exact_below:
        return McNemar(b, c, _binom_two_sided(b, n), "exact")
    stat = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, math.erfc(math.sqrt(stat / 2)), "chi2")  # chi-square, 1 df, survival function


@dataclass(frozen=True)
class BootstrapCI:
    """Mean paired difference (B - A) with a percentile confidence interval."""

    mean_diff: float
    low: float
    high: float
    confidence: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Resample items with replacement; the interval of the mean score difference B - A."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ValueError("both models must be scored on the same, non-empty items")
    diffs = [b - a for a, b in zip(scores_a, scores_b, strict=True)]
    n, rng = len(diffs), random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    alpha = (1 - confidence) / 2
    low = means[int(alpha * (resamples - 1))]
    high = means[math.ceil((1 - alpha) * (resamples - 1))]
    return BootstrapCI(sum(diffs) / n, low, high, confidence)


@dataclass(frozen=True)
class WinRate:
    """How often ``a`` beat ``b`` on shared items (ties count half), with a Wilson interval."""

    a: str
    b: str
    rate: float
    low: float
    high: float
    n: int


def _wilson(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rates(scores: Mapping[str, Mapping[str, float]]) -> list[WinRate]:
    """Every ordered pair of models: per shared item, the higher score wins, equal scores tie.

    Args:
        scores: model -> item id -> score (1/0 for correctness, or any graded score).
    """
    out = []
    names = list(scores)
    for a in names:
        for b in names:
            if a == b:
                continue
            shared = sorted(set(scores[a]) & set(scores[b]))
            wins = sum(
                1.0 if scores[a][i] > scores[b][i] else 0.5 if scores[a][i] == scores[b][i] else 0.0
                for i in shared
            )
            low, high = _wilson(wins, len(shared))
            out.append(WinRate(a, b, wins / len(shared) if shared else 0.5, low, high, len(shared)))
    return out


def bradley_terry(scores: Mapping[str, Mapping[str, float]], iterations: int = 200) -> dict[str, float]:
    """Bradley–Terry strengths (sum to 1) from pairwise wins on shared items, by the MM algorithm.

    Ties count half a win each way; a small prior (half a win against every other model) keeps the
    strengths finite when one model wins everything.
    """
    names = list(scores)
    wins = {(a, b): 0.5 for a in names for b in names if a != b}
    for w in win_rates(scores):
        wins[(w.a, w.b)] += w.rate * w.n
    strength = dict.fromkeys(names, 1.0 / max(len(names), 1))
    for _ in range(iterations):
        new = {}
        for a in names:
            total_wins = sum(wins[(a, b)] for b in names if b != a)
            denom = sum((wins[(a, b)] + wins[(b, a)]) / (strength[a] + strength[b]) for b in names if b != a)
            new[a] = total_wins / denom if denom else strength[a]
        norm = sum(new.values())
        strength = {k: v / norm for k, v in new.items()}
    return dict(sorted(strength.items(), key=lambda kv: -kv[1]))
