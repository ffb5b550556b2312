"""Verification throughput: the confined, batched sandbox vs a bare subprocess per item.

The optimisation loop verifies thousands of generated items (a small program each that recomputes an
answer). The same N items go through:

* IMTS ``run_batch``: one bubblewrap-confined process; a fresh forked worker per item with its own
  limits, seccomp filter, audit hook, scratch folder and deadline;
* the alternative without any confinement: ``python -I -S -c CODE`` in a new subprocess per item
  (what a plain verifier does), with a timeout;
* IMTS ``run_python`` per item (confined, no batching), on a tenth of the items, for scale.

    PYTHONPATH=src python benchmarks/sandbox.py [--items 1000]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time

from imts.agents.sandbox import confinement, run_batch, run_python


def items(n: int, seed: int = 0) -> list[str]:
    """Generated word-problem checks: recompute with exact fractions and print the verdict."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(1, 50)
        claimed = a * b - c if rng.random() < 0.8 else a * b - c + 1
        out.append(
            "from fractions import Fraction as F\n"
            f"total = F({a}) * F({b}) - F({c})\n"
            f"print('pass' if total == F({claimed}) else 'fail', total)\n"
        )
    return out


def bare(codes: list[str]) -> list[str]:
    got = []
    for code in codes:
        res = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=5
        )
        got.append(res.stdout.split()[0])
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    codes = items(args.items)
    conf = confinement()
    print(f"sandbox: {conf.detail}, seccomp {conf.seccomp}; {args.items} items")

    t0 = time.perf_counter()
    batched = [r.stdout.split()[0] for r in run_batch(codes)]
    t_batch = time.perf_counter() - t0

    t0 = time.perf_counter()
    plain = bare(codes)
    t_bare = time.perf_counter() - t0

    tenth = codes[: max(1, args.items // 10)]
    t0 = time.perf_counter()
    single = [run_python(c).stdout.split()[0] for c in tenth]
    t_single = time.perf_counter() - t0

    assert batched == plain and single == plain[: len(tenth)], "the sides disagree"
    print(f"passed {batched.count('pass')}/{len(batched)} (same verdicts on every side)")
    rate_batch, rate_bare, rate_single = len(codes) / t_batch, len(codes) / t_bare, len(tenth) / t_single
    print(f"IMTS run_batch (confined, batched):    {rate_batch:8.1f} verifications/s ({t_batch:.1f} s)")
    print(f"bare subprocess per item (unconfined): {rate_bare:8.1f} verifications/s ({t_bare:.1f} s)")
    print(f"IMTS run_python per item (confined):   {rate_single:8.1f} verifications/s ({t_single:.1f} s)")
    print(f"ratio batched confined / bare subprocess: {rate_batch / rate_bare:.2f}x")


if __name__ == "__main__":
    main()
