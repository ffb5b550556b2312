"""Seeded train/val/test split with decontamination of val/test against train.

The split is one operation producing one new version whose rows carry a ``split`` column. Items of
val/test that also occur in train (same normalised prompt) or share word 13-grams with train (the
GPT-3 contamination rule) are removed from val/test and counted in the version's report, so held-out
evaluation is really held out.

Streamed in three passes over the version's shards, so memory does not grow with the number of rows:
count the rows of each stratum; assign every row (``SplitAssigner``) and put its normalised prompt,
n-gram hashes and MinHash keys into working tables on disk (``scratch``), where contamination is
found; assign again (the same seeded sequence) and write the rows that are kept. Rows keep their
stored order.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from imts.core.errors import InputError
from imts.core.progress import NullProgress, Progress
from imts.core.text import ngrams, tokens
from imts.data import scratch
from imts.data.schemas import TEXT_COLUMNS
from imts.data.versions import DataRef, VersionInfo, commit_version, iter_tables
from imts.store.context import Context


def prompt_text(row: dict[str, Any]) -> str:
    if "messages" not in row:  # other formats: their prompt or text (see schemas.row_text)
        return str(row.get("prompt") or row.get("text") or "")
    return "\n".join(m["content"] for m in row["messages"][:-1])


class SplitAssigner:
    """Seeded, stratified assignment in one pass, with exact counts: of a stratum's ``n`` rows,
    ``round(n * test)`` go to test and ``round(n * val)`` to val.

    Selection sampling (Knuth's algorithm S): the next row of a stratum with ``left`` rows left, of
    which ``t`` must still go to test and ``v`` to val, goes to test with probability ``t / left``, to
    val with ``v / left``. Every subset of the right sizes is equally likely, and only counts per
    stratum are kept, so the rows need not be in memory. The same seed and row order give the same
    assignment, which is how the writing pass repeats it.
    """

    def __init__(self, counts: dict[str, int], ratios: tuple[float, float, float], seed: int) -> None:
        if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
            raise InputError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
        self._rng = random.Random(seed)
        self._left = dict(counts)
        self._need = {k: [round(n * ratios[2]), round(n * ratios[1])] for k, n in counts.items()}

    def __call__(self, stratum: str) -> str:
        left, need = self._left[stratum], self._need[stratum]
        self._left[stratum] = left - 1
        u = self._rng.randrange(left)
        if u < need[0]:
            need[0] -= 1
            return "test"
        if u < need[0] + need[1]:
            need[1] -= 1
            return "val"
        return "train"


def _stratum(value: Any) -> str:
    return str(value)


def split_rows(
    rows: list[dict[str, Any]],
    ratios: tuple[float, float, float],
    seed: int,
    stratify_by: str | None,
) -> dict[str, list[dict[str, Any]]]:
    """Assign rows to train/val/test (``SplitAssigner``); within each stratum the same proportions."""
    keys = [_stratum(r.get(stratify_by)) if stratify_by else "" for r in rows]
    assign = SplitAssigner(Counter(keys), ratios, seed)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for key, r in zip(keys, rows, strict=True):
        out[assign(key)].append(r)
    return out


class Decontaminator:
    """Finds held-out rows contaminated by train rows, over working tables in a DuckDB ``scratch``.

    ``add`` rows of either side as they stream past (each with a position); ``run`` then decides, per
    held-out row: its normalised prompt equals a train prompt (exact), else it shares a word ``n``-gram
    with a train prompt (hashed to 64 bits), else (with ``near_threshold``) it is a MinHash
    near-duplicate of a train prompt.
    """

    def __init__(self, con: Any, n: int = 13, near_threshold: float | None = None) -> None:
        self.con, self.n, self.near_threshold = con, n, near_threshold
        con.execute("CREATE TABLE train_exact (norm VARCHAR)")
        con.execute("CREATE TABLE train_grams (h BIGINT)")
        con.execute("CREATE TABLE train_ids (pos BIGINT, id VARCHAR)")
        con.execute("CREATE TABLE held (pos BIGINT, split VARCHAR, id VARCHAR, norm VARCHAR, head VARCHAR)")
        con.execute("CREATE TABLE held_grams (pos BIGINT, h BIGINT)")
        self.near = (
            (
                scratch.MinHashTables(con, "train", near_threshold),
                scratch.MinHashTables(con, "held", near_threshold),
            )
            if near_threshold is not None
            else None
        )

    @staticmethod
    def empty_report(n: int, near_threshold: float | None) -> dict[str, Any]:
        report: dict[str, Any] = {"exact_removed": 0, f"ngram{n}_removed": 0, "examples": []}
        return report | ({"near_removed": 0} if near_threshold is not None else {})

    def add(self, rows: list[dict[str, Any]], positions: list[int], splits: list[str]) -> None:
        """Rows of a batch, their positions in the version and their splits ("train" or held out)."""
        sides: dict[str, list[tuple[int, str, str, str, list[str]]]] = {"train": [], "held": []}
        for pos, r, split in zip(positions, rows, splits, strict=True):
            text = prompt_text(r)
            sides["train" if split == "train" else "held"].append((pos, r["id"], split, text, tokens(text)))
        for side, items in sides.items():
            if not items:
                continue
            pos = np.array([x[0] for x in items], dtype=np.int64)
            ids = pa.array([x[1] for x in items], pa.string())
            norm = pa.array([" ".join(x[4]) for x in items], pa.string())
            gram_pos: list[int] = []
            grams: list[int] = []
            for p, *_, toks in items:
                hashes = [hash(g) for g in ngrams(toks, self.n)]  # 64-bit, consistent within the process
                grams += hashes
                gram_pos += [p] * len(hashes)
            if side == "train":
                scratch.insert(self.con, "train_exact", {"norm": norm})
                scratch.insert(self.con, "train_grams", {"h": np.array(grams, dtype=np.int64)})
                scratch.insert(self.con, "train_ids", {"pos": pos, "id": ids})
            else:
                held = {"split": pa.array([x[2] for x in items], pa.string()), "id": ids, "norm": norm}
                heads = pa.array([x[3][:200] for x in items], pa.string())
                scratch.insert(self.con, "held", {"pos": pos, **held, "head": heads})
                gram_cols = {"pos": np.array(gram_pos, dtype=np.int64), "h": np.array(grams, dtype=np.int64)}
                scratch.insert(self.con, "held_grams", gram_cols)
            if self.near is not None:
                self.near[0 if side == "train" else 1].add(pos, [x[3] for x in items])

    def run(self) -> dict[str, dict[str, Any]]:
        """Create table ``removed(pos)`` and return the report of each held-out split."""
        con = self.con
        con.execute("CREATE TABLE exact AS SELECT pos FROM held WHERE norm IN (SELECT norm FROM train_exact)")
        con.execute(
            "CREATE TABLE gram AS SELECT DISTINCT pos FROM held_grams WHERE h IN (SELECT h FROM train_grams) "
            "AND pos NOT IN (SELECT pos FROM exact)"
        )
        if self.near is not None:
            links = self.near[1].links(
                self.near[0],
                where="q.pos NOT IN (SELECT pos FROM exact) AND q.pos NOT IN (SELECT pos FROM gram)",
            )
            con.execute(f"CREATE TABLE near AS SELECT pos, rep FROM {links}")
        else:
            con.execute("CREATE TABLE near (pos BIGINT, rep BIGINT)")
        con.execute(
            "CREATE TABLE removed AS "
            "SELECT pos FROM exact UNION ALL SELECT pos FROM gram UNION ALL SELECT pos FROM near"
        )
        splits = [split for (split,) in con.execute("SELECT DISTINCT split FROM held").fetchall()]
        return {split: self._report(split) for split in splits}

    def _report(self, split: str) -> dict[str, Any]:
        con, n = self.con, self.n

        def count(table: str) -> int:
            sql = f"SELECT count(*) FROM {table} JOIN held USING (pos) WHERE held.split = ?"
            return int(con.execute(sql, [split]).fetchone()[0])

        def examples(table: str, reason: str) -> list[dict[str, Any]]:
            near = table == "near"
            sql = (
                f"SELECT h.id, h.head{', t.id' if near else ''} FROM {table} x JOIN held h USING (pos)"
                f"{' JOIN train_ids t ON t.pos = x.rep' if near else ''} "
                "WHERE h.split = ? ORDER BY x.pos LIMIT 5"
            )
            return [
                {"id": row[0], "reason": reason, **({"train_id": row[2]} if near else {}), "prompt": row[1]}
                for row in con.execute(sql, [split]).fetchall()
            ]

        report: dict[str, Any] = {
            "exact_removed": count("exact"),
            f"ngram{n}_removed": count("gram"),
            "examples": examples("exact", "exact")
            + examples("gram", f"{n}-gram")
            + examples("near", "near-duplicate"),
        }
        if self.near_threshold is not None:
            report["near_removed"] = count("near")
        return report


def decontaminate(
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    n: int = 13,
    near_threshold: float | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drop held-out rows whose prompt equals a train prompt, shares an ``n``-gram with train, or (with
    ``near_threshold``) is a MinHash near-duplicate of a train prompt (``Decontaminator`` on lists)."""
    with tempfile.TemporaryDirectory(prefix="imts-decontaminate-") as folder:
        con = scratch.connect(Path(folder))
        try:
            d = Decontaminator(con, n, near_threshold)
            d.add(train, list(range(len(train))), ["train"] * len(train))
            d.add(held_out, list(range(len(train), len(train) + len(held_out))), ["held"] * len(held_out))
            report = d.run().get("held") or Decontaminator.empty_report(n, near_threshold)
            removed = {p for (p,) in con.execute("SELECT pos FROM removed").fetchall()}
        finally:
            con.close()
    return [r for i, r in enumerate(held_out) if len(train) + i not in removed], report


def split_version(
    ctx: Context,
    source: DataRef | VersionInfo,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify_by: str | None = "category",
    ngram: int = 13,
    progress: Progress | None = None,
    near_threshold: float | None = None,
    into: str | None = None,
) -> VersionInfo:
    """Split a version into train/val/test (a new version with a ``split`` column), decontaminated."""
    progress = progress or NullProgress()
    version = source.version if isinstance(source, DataRef) else source
    if stratify_by and stratify_by not in version.columns:
        stratify_by = None
    counts: Counter[str] = Counter()
    if stratify_by:
        values = 0
        for table in iter_tables(ctx, version, columns=[stratify_by]):
            counts.update(_stratum(v) for v in table[stratify_by].to_pylist())
            values += table.num_rows - table[stratify_by].null_count
        if not values:  # no row has a value: nothing to stratify by
            stratify_by, counts = None, Counter()
    if not stratify_by:
        counts[""] = version.num_rows
    SplitAssigner(counts, ratios, seed)  # validates the ratios before any work

    def assigned(columns: list[str] | None) -> Iterator[tuple[pa.Table, list[str], int]]:
        """Tables of the version with each row's split and the position of the table's first row."""
        assign = SplitAssigner(counts, ratios, seed)
        read = (
            None
            if columns is None
            else list(dict.fromkeys([*columns, *([stratify_by] if stratify_by else [])]))
        )
        pos = 0
        for table in iter_tables(ctx, version, columns=read):
            keys = (
                [_stratum(v) for v in table[stratify_by].to_pylist()]
                if stratify_by
                else [""] * table.num_rows
            )
            yield table, [assign(k) for k in keys], pos
            pos += table.num_rows

    with ctx.artifacts.staging() as folder:
        con = scratch.connect(folder)
        try:
            d = Decontaminator(con, ngram, near_threshold)
            sizes: Counter[str] = Counter()
            with progress.task("split: assigning and hashing rows", total=version.num_rows) as task:
                for table, splits, start in assigned(["id", *TEXT_COLUMNS[version.format]]):
                    d.add(table.to_pylist(), list(range(start, start + table.num_rows)), splits)
                    sizes.update(splits)
                    task.advance(table.num_rows)
            held = d.run()
            report: dict[str, Any] = {
                name: held.get(name) or Decontaminator.empty_report(ngram, near_threshold)
                for name in ("val", "test")
            }
            removed = {
                name: sum(v for k, v in report[name].items() if k.endswith("_removed"))
                for name in ("val", "test")
            }
            report["counts"] = {
                "train": sizes["train"],
                "val": sizes["val"] - removed["val"],
                "test": sizes["test"] - removed["test"],
            }
            progress.log(
                "split: "
                + ", ".join(f"{k} {v}" for k, v in report["counts"].items())
                + " | decontaminated: "
                + ", ".join(
                    f"{k} -{report[k]['exact_removed']} exact "
                    f"-{report[k][f'ngram{ngram}_removed']} {ngram}-gram"
                    for k in ("val", "test")
                )
            )
            drop = scratch.SortedPositions(
                scratch.positions_in(scratch.stream(con, "SELECT pos FROM removed ORDER BY pos"))
            )

            def rows_out() -> Iterator[list[dict[str, Any]]]:
                for table, splits, start in assigned(None):
                    mask = drop.mask(start, start + table.num_rows)
                    out = [
                        {**{k: v for k, v in r.items() if k != "split"}, "split": split}
                        for r, split, gone in zip(table.to_pylist(), splits, mask.tolist(), strict=True)
                        if not gone
                    ]
                    if out:
                        yield out

            return commit_version(
                ctx,
                dataset=into or version.dataset,
                batches=rows_out(),
                operation="split",
                params={
                    "ratios": list(ratios),
                    "seed": seed,
                    "stratify_by": stratify_by,
                    "decontaminate_ngram": ngram,
                    "decontaminate_near_threshold": near_threshold,
                },
                parents=[version.id],
                report=report,
                progress=progress,
                create=into is not None,
                dataset_format=version.format,
            )
        finally:
            con.close()
