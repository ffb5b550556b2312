"""Near-duplicate detection: IMTS MinHash LSH (numpy) against datasketch MinHashLSH, in one run.

Workload: ``--docs`` synthetic documents (default 100,000) of 40-80 words drawn from a 20,000-word
vocabulary; ``--dup-rate`` of them (default 5%) are planted near-duplicates of an earlier document
(one word replaced, and half of the time one word dropped: word-bigram Jaccard about 0.85-0.95).
Ground truth: the planted documents.

Same parameters on both sides: the same shingle sets (``imts.data.dedup.shingles``: word 2-grams),
``num_perm`` permutations, the same (bands, rows) (chosen by ``imts.data.dedup.optimal_bands`` for
``--threshold`` and passed to datasketch as ``params=``). Each side is timed from the shingle sets to the
set of flagged documents (a document is flagged when it shares a bucket with an earlier document;
IMTS also verifies each candidate pair's estimated Jaccard, datasketch's LSH returns candidates as they
are). Shingling is done once, untimed, for both.

Precision = flagged planted / flagged; recall = flagged planted / planted.

    PYTHONPATH=src .venv/bin/python benchmarks/dedup.py [--docs 100000] [--threshold 0.7]
"""

from __future__ import annotations

import argparse
import random
import time
import zlib

import numpy as np


def make_docs(n: int, dup_rate: float, seed: int) -> tuple[list[str], set[int]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    docs: list[str] = []
    planted: set[int] = set()
    for i in range(n):
        if i > 10 and rng.random() < dup_rate:
            words = docs[rng.randrange(i)].split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            if rng.random() < 0.5:
                del words[rng.randrange(len(words))]
            planted.add(i)
            docs.append(" ".join(words))
        else:
            docs.append(" ".join(rng.choices(vocab, k=rng.randint(40, 80))))
    return docs, planted


def score(flagged: set[int], planted: set[int]) -> tuple[float, float]:
    tp = len(flagged & planted)
    return tp / max(1, len(flagged)), tp / max(1, len(planted))


def run_imts(
    shingle_sets: list[set[str]], threshold: float, num_perm: int, bands: int, rows: int
) -> set[int]:
    from imts.data.dedup import MinHasher, candidate_links

    hasher = MinHasher(num_perm)
    sigs = np.empty((len(shingle_sets), num_perm), dtype=np.uint32)
    step = 2_000
    for start in range(0, len(shingle_sets), step):
        hashes = [
            np.fromiter((zlib.crc32(g.encode()) for g in s), dtype=np.uint64, count=len(s))
            for s in shingle_sets[start : start + step]
        ]
        sigs[start : start + len(hashes)] = hasher.from_hashes(hashes)
    return {i for i, _ in candidate_links(sigs, threshold, bands, rows).tolist()}


def run_datasketch(
    shingle_sets: list[set[str]], threshold: float, num_perm: int, bands: int, rows: int
) -> set[int]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
    flagged: set[int] = set()
    for i, s in enumerate(shingle_sets):
        m = MinHash(num_perm=num_perm)
        m.update_batch([g.encode() for g in s])
        if lsh.query(m):  # every key in the index is an earlier document
            flagged.add(i)
        lsh.insert(i, m)
    return flagged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dup-rate", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from imts.data.dedup import optimal_bands, shingles

    docs, planted = make_docs(args.docs, args.dup_rate, args.seed)
    shingle_sets = [shingles(d, 2, 0) for d in docs]
    bands, rows = optimal_bands(args.threshold, args.num_perm)
    print(
        f"{len(docs)} documents, {len(planted)} planted near-duplicates; threshold {args.threshold}, "
        f"num_perm {args.num_perm}, bands {bands} x rows {rows}"
    )
    results = {}
    for name, fn in (("imts", run_imts), ("datasketch", run_datasketch)):
        t0 = time.perf_counter()
        flagged = fn(shingle_sets, args.threshold, args.num_perm, bands, rows)
        dt = time.perf_counter() - t0
        p, r = score(flagged, planted)
        results[name] = dt
        print(f"{name:>10}: {dt:7.1f} s  {len(docs) / dt:9.0f} docs/s  precision {p:.4f}  recall {r:.4f}")
    print(f"speed-up imts / datasketch: {results['datasketch'] / results['imts']:.1f}x")


if __name__ == "__main__":
    main()
