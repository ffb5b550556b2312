from __future__ import annotations

import math

from imts.train.watchdog import Watchdog, WatchdogSpec


def test_healthy_steps_pass_and_spikes_are_caught() -> None:
    wd = Watchdog(WatchdogSpec(min_history=4, window=6, loss_spike=2.5))
    for loss in (2.0, 1.8, 1.9, 1.7, 1.6):
        assert wd.check(loss, 1.0) is None
    spike = wd.check(9.0, 1.0)
    assert spike is not None and spike.reason == "loss_spike" and "recent median" in spike.detail
    explode = wd.check(1.5, 50.0)
    assert explode is not None and explode.reason == "grad_spike"
    assert wd.check(1.5, 1.2) is None  # verdicts are not remembered as history
    assert len(wd.losses) == 6 and max(wd.losses) < 3


def test_non_finite_always_caught_even_without_history() -> None:
    wd = Watchdog(WatchdogSpec())
    assert wd.check(math.nan, 1.0).reason == "nan_loss"  # type: ignore[union-attr]
    assert wd.check(1.0, math.inf).reason == "nan_grad"  # type: ignore[union-attr]
    assert wd.check(1.0, 1.0) is None


def test_no_spike_verdicts_before_min_history_and_when_disabled() -> None:
    wd = Watchdog(WatchdogSpec(min_history=5))
    assert wd.check(1.0, 1.0) is None and wd.check(50.0, 1.0) is None
    off = Watchdog(WatchdogSpec(enabled=False))
    assert off.check(math.nan, math.nan) is None


def test_default_tolerates_a_hard_batch() -> None:
    """A batch of short, hard rows at 6x the median loss is data, not divergence (seen on the demo data)."""
    wd = Watchdog(WatchdogSpec())
    for i in range(12):
        assert wd.check(0.5 + 0.01 * i, 1.0) is None
    assert wd.check(3.0, 2.0) is None
    assert wd.check(30.0, 2.0).reason == "loss_spike"  # type: ignore[union-attr]
