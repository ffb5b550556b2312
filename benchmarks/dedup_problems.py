"""Near-duplicate quality on maths problems: planted duplicates found, distinct problems kept.

Two measurements of ``imts.data.dedup.near_duplicates`` at threshold 0.7:

1. the example generator's 2,000 rows (``examples/mathgen.py``, seed 3), whose planted exact and
   near duplicates (rewordings) are the ground truth: precision and recall of the flagged rows;
2. pairs of distinct problems written alike (numbers swapped, another operation; English, symbols,
   Chinese) and pairs of true rewordings (``tests/data/test_dedup.py``: ``DISTINCT`` and ``SAME``):
   how many distinct pairs are wrongly flagged, how many rewordings are caught.

    PYTHONPATH=src:. .venv/bin/python benchmarks/dedup_problems.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT)]

import mathgen  # noqa: E402
from tests.data.test_dedup import DISTINCT, SAME  # noqa: E402

from imts.data.dedup import near_duplicates  # noqa: E402


def main() -> None:
    rows, manifest = mathgen.generate(n=2000, seed=3)
    planted = {d for d, _ in manifest["near_duplicates"]} | {d for d, _ in manifest["exact_duplicates"]}
    found = {rows[i]["id"] for i in near_duplicates([r["prompt"] for r in rows], threshold=0.7)}
    tp = len(found & planted)
    print(
        f"mathgen 2000 rows: flagged {len(found)}, planted {len(planted)}, "
        f"precision {tp / max(1, len(found)):.4f}, recall {tp / max(1, len(planted)):.4f}"
    )
    wrong = sum(bool(near_duplicates([a, b], threshold=0.7)) for a, b in DISTINCT)
    caught = sum(bool(near_duplicates([a, b], threshold=0.7)) for a, b in SAME)
    print(f"distinct pairs flagged {wrong}/{len(DISTINCT)}; rewordings caught {caught}/{len(SAME)}")


if __name__ == "__main__":
    main()
