"""A multi-gigabyte JSONL import with bounded memory: ``imts data import`` of a generated file.

Generates (seeded) a JSON Lines file of ``--gb`` gigabytes of chat-style SFT rows of about 1 KB each
(id, a prompt of 2-5 sentences, a response of 5-12 sentences with numbers, category, a source
field), then runs ``imts data import FILE --name big`` under ``/usr/bin/time -v`` in a fresh workspace
and prints rows, gigabytes, wall time, rows/s and the import process's peak RSS. The file and the
workspace are deleted afterwards unless ``--keep``.

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/big_import.py --gb 5 --dir /tmp/big
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

CATEGORIES = ["addition", "subtraction", "multiplication", "division", "percent", "chat", "code"]
WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "an",
    "which",
    "have",
    "not",
    "shop",
    "apples",
    "train",
    "hours",
    "price",
    "total",
    "each",
    "more",
    "than",
    "less",
    "buys",
    "sells",
    "costs",
    "morning",
    "afternoon",
    "week",
    "first",
    "then",
    "after",
    "before",
    "twice",
    "half",
    "remaining",
    "number",
    "answer",
    "step",
    "value",
    "equal",
    "result",
    "because",
    "so",
]


def write_file(path: Path, gigabytes: float, seed: int = 0) -> int:
    """Write about ``gigabytes`` GB of rows to ``path``; returns the number of rows."""
    rng = random.Random(seed)
    sentences = [
        " ".join(rng.choices(WORDS, k=rng.randint(8, 18))).capitalize() + " {} {}." for _ in range(5_000)
    ]
    target = int(gigabytes * 1e9)
    written = rows = 0
    with path.open("w", encoding="utf-8") as f:
        while written < target:
            lines = []
            for _ in range(10_000):

                def text(n: int) -> str:
                    return " ".join(
                        rng.choice(sentences).format(rng.randint(1, 9999), rng.choice(WORDS))
                        for _ in range(n)
                    )

                row = {
                    "id": f"r{rows}",
                    "prompt": text(rng.randint(2, 5)),
                    "response": text(rng.randint(5, 12)) + f" The answer is {rng.randint(1, 99999)}.",
                    "category": rng.choice(CATEGORIES),
                    "source": "big_import",
                }
                lines.append(json.dumps(row))
                rows += 1
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=5.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/imts-big-import"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the generated file and the workspace")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    src, ws = args.dir / "rows.jsonl", args.dir / "ws"
    try:
        if not src.exists():
            t = time.perf_counter()
            rows = write_file(src, args.gb, args.seed)
            print(
                f"generated {rows} rows, {src.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t:.0f} s"
            )
        imts = shutil.which("imts") or str(Path(sys.executable).with_name("imts"))
        cmd = ["/usr/bin/time", "-v", imts, "data", "import", str(src), "--name", "big"]
        print("$ IMTS_WORKSPACE=" + str(ws), " ".join(cmd))
        t = time.perf_counter()
        out = subprocess.run(
            cmd, env={**os.environ, "IMTS_WORKSPACE": str(ws)}, capture_output=True, text=True
        )
        wall = time.perf_counter() - t
        print(out.stdout[-2000:])
        if out.returncode:
            sys.exit(out.stderr[-4000:])
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))  # type: ignore[union-attr]
        n = int(re.search(r"imported (\d+) rows", out.stdout).group(1))  # type: ignore[union-attr]
        print(
            f"{n} rows, {src.stat().st_size / 1e9:.2f} GB: wall {wall:.0f} s, {n / wall:.0f} rows/s, "
            f"{src.stat().st_size / 1e6 / wall:.1f} MB/s, peak RSS {rss_kb / 1024:.0f} MiB"
        )
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
