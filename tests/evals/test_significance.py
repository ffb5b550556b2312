from __future__ import annotations

import pytest

from imts.evals.significance import bradley_terry, mcnemar, paired_bootstrap, win_rates


def test_mcnemar_exact_for_small_counts() -> None:
    a = [True] * 10 + [False] * 10
    b = [True] * 10 + [True] * 8 + [False] * 2  # 8 items fixed, none broken
    got = mcnemar(a, b)
    assert (got.b, got.c, got.method) == (0, 8, "exact")
    assert got.p_value == pytest.approx(2 / 2**8)  # both tails of Binomial(8, 0.5) at 0
    assert mcnemar(a, a).p_value == 1.0


def test_mcnemar_chi2_for_large_counts() -> None:
    a = [True] * 30 + [False] * 30
    b = [False] * 30 + [True] * 30  # 30 broken, 30 fixed: no evidence of change
    got = mcnemar(a, b)
    assert got.method == "chi2" and got.p_value > 0.8
    lopsided = mcnemar([False] * 40, [True] * 35 + [False] * 5)
    assert lopsided.p_value < 1e-6


def test_paired_bootstrap_interval() -> None:
    a = [0.0, 1.0] * 50
    better = paired_bootstrap(a, [1.0] * 100)
    assert better.mean_diff == pytest.approx(0.5) and better.significant and better.low > 0.3
    same = paired_bootstrap(a, list(reversed(a)))
    assert not same.significant and same.low < 0 < same.high


def test_win_rates_and_bradley_terry_rank() -> None:
    scores = {
        "base": {str(i): float(i < 3) for i in range(10)},
        "v1": {str(i): float(i < 6) for i in range(10)},
        "v2": {str(i): float(i < 9) for i in range(10)},
    }
    rates = {(w.a, w.b): w for w in win_rates(scores)}
    assert rates[("v2", "base")].rate == pytest.approx(0.8)  # 6 wins, 4 ties of 10
    assert rates[("base", "v2")].rate == pytest.approx(0.2)
    assert rates[("v2", "base")].low < 0.8 < rates[("v2", "base")].high
    ranking = bradley_terry(scores)
    assert list(ranking) == ["v2", "v1", "base"] and sum(ranking.values()) == pytest.approx(1.0)
