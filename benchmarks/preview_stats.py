"""Preview and statistics on a 1M-row version: IMTS (DuckDB over the shards) against pandas.

Builds a ``--rows`` version (default 1,000,000 SFT rows, 10 shards) through ``commit_version`` and
times, on each side, (1) one filtered page: rows 1000-1019 of ``category = 'division'``, with the total
count; (2) per-field statistics: nulls, top categories, prompt/response length summary.

* ``imts``   -- ``imts.data.inspect.preview`` and ``field_stats`` (every field of the schema).
* ``pandas`` -- ``pd.read_parquet`` of the shards, then a boolean filter and ``iloc`` for the page, and
  ``isna().sum()``, ``value_counts()`` and ``str.len().describe()`` on the message texts for the stats
  (a subset of what IMTS computes). Load time is counted: it is what a user waits for.

    PYTHONPATH=src .venv/bin/python benchmarks/preview_stats.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CATEGORIES = ["addition", "subtraction", "multiplication", "division", "percent"]


def rows(n: int) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(0)
    batch = []
    for i in range(n):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        batch.append(
            {
                "id": f"q{i}",
                "messages": [
                    {"role": "user", "content": f"A shop sells {a} apples and then {b} more. How many?"},
                    {"role": "assistant", "content": f"{a} + {b} = {a + b}."},
                ],
                "category": rng.choice(CATEGORIES),
                "lang": "en",
                "answer": str(a + b),
                "meta": None,
            }
        )
        if len(batch) == 5000:
            yield batch
            batch = []
    if batch:
        yield batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    import pandas as pd

    from imts.core.settings import Settings
    from imts.data.inspect import field_stats, preview
    from imts.data.versions import commit_version, shard_path
    from imts.store.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="imts-preview-bench-") as tmp:
        ws = Workspace(Settings(workspace=Path(tmp) / "ws"))
        t = time.perf_counter()
        v = commit_version(ws, "bench", operation="bench", create=True, batches=rows(args.rows))
        print(f"{v.num_rows} rows in {len(v.shards)} shards (built in {time.perf_counter() - t:.0f} s)")

        t = time.perf_counter()
        page, total = preview(ws, v, where="category = 'division'", limit=20, offset=1000)
        t_page = time.perf_counter() - t
        t = time.perf_counter()
        st = field_stats(ws, v)
        t_stats = time.perf_counter() - t
        print(
            f"   imts: page {t_page:6.2f} s ({total} matching)  "
            f"stats {t_stats:6.2f} s ({len(st['fields'])} fields)"
        )

        t = time.perf_counter()
        df = pd.concat([pd.read_parquet(shard_path(ws, d)) for d in v.shards], ignore_index=True)
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        sel = df[df["category"] == "division"]
        p_page, p_total = sel.iloc[1000:1020], len(sel)
        t_ppage = time.perf_counter() - t
        t = time.perf_counter()
        df.isna().sum()
        df["category"].value_counts()
        df["messages"].map(lambda m: len(m[0]["content"])).describe()
        df["messages"].map(lambda m: len(m[-1]["content"])).describe()
        t_pstats = time.perf_counter() - t
        assert p_total == total and list(p_page["id"]) == [r["id"] for r in page]
        print(
            f" pandas: load {t_load:6.2f} s, then page {t_ppage:6.2f} s, stats {t_pstats:6.2f} s "
            f"(page incl. load {t_load + t_ppage:.2f} s)"
        )
        print(
            f"ratio page (pandas incl. load / imts): {(t_load + t_ppage) / t_page:.1f}x; "
            f"stats: {(t_load + t_pstats) / t_stats:.1f}x"
        )


if __name__ == "__main__":
    main()
