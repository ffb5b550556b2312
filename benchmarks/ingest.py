"""Streamed JSONL import: IMTS ``import_file`` against pandas ``read_json(lines=True)`` + ``to_parquet``.

One run generates a ``--rows`` JSON Lines file (default 1,000,000 prompt/response rows with id,
category and an extra field; about 170 bytes a row) and imports it on each side, each side in a fresh
subprocess launched from this script so that its peak resident memory (``resource.getrusage``
``ru_maxrss`` of that process) is its own. Reported per side: wall time, rows/s, peak RSS.

* ``imts``   -- ``imts.data.ingest.import_file`` into a fresh SQLite workspace: parse, validate, map to
  the canonical chat schema, id uniqueness, statistics, content-addressed zstd Parquet shards, version
  row (everything a real import does; column-wise since issue 17, see ``imts.data.columnar``).
* ``pandas`` -- ``pandas.read_json(path, lines=True)`` then ``DataFrame.to_parquet`` (pyarrow, zstd):
  the usual way to turn a JSONL dump into Parquet; no validation, no mapping.

    PYTHONPATH=src .venv/bin/python benchmarks/ingest.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = {
    "imts": """
import resource, sys, time
from pathlib import Path
from imts.core.settings import Settings
from imts.data.ingest import import_file
from imts.services.startup import local_context
ws = local_context(Settings(workspace=Path(sys.argv[2])))
t = time.perf_counter()
v = import_file(ws, Path(sys.argv[1]), name="bench")
dt = time.perf_counter() - t
print(v.num_rows, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""",
    "pandas": """
import resource, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_json(sys.argv[1], lines=True)
df.to_parquet(sys.argv[2] + ".parquet", compression="zstd")
dt = time.perf_counter() - t
print(len(df), dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""",
}
CATEGORIES = ["addition", "subtraction", "multiplication", "division", "percent"]


def write_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            a, b = rng.randint(1, 999), rng.randint(1, 999)
            row = {
                "id": f"q{i}",
                "prompt": f"A shop sells {a} apples in the morning and {b} in the afternoon. "
                "How many in all?",
                "response": f"{a} + {b} = {a + b}. The answer is {a + b}.",
                "category": rng.choice(CATEGORIES),
                "source": "bench",
            }
            f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="imts-ingest-bench-") as tmp:
        src = Path(tmp) / "rows.jsonl"
        write_file(src, args.rows)
        size_mb = src.stat().st_size / 1e6
        print(f"{args.rows} rows, {size_mb:.0f} MB JSONL")
        times: dict[str, float] = {}
        for side, code in CHILD.items():
            out = subprocess.run(
                [sys.executable, "-c", code, str(src), str(Path(tmp) / side)],
                capture_output=True,
                text=True,
                check=True,
            )
            n, dt, rss_kb = out.stdout.split()
            times[side] = float(dt)
            print(
                f"{side:>7}: {float(dt):7.1f} s  {int(n) / float(dt):9.0f} rows/s  "
                f"{size_mb / float(dt):6.1f} MB/s  peak RSS {int(rss_kb) / 1024:7.0f} MiB"
            )
        ratio = times["pandas"] / times["imts"]
        print(f"imts is {ratio:.2f}x pandas' speed ({'faster' if ratio >= 1 else 'slower'})")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
