"""Seeded train/val/test split with decontamination of val/test against train.

The split is one operation producing one new version whose rows carry a ``split`` column. Items of
val/test that also occur in train (same normalised prompt) or share word 13-grams with train (the
GPT-3 contamination rule) are removed from val/test and counted in the version's report, so held-out
evaluation is really held out.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import defaultdict
from typing import Any

from imts.core.errors import InputError
from imts.core.progress import NullProgress, Progress
from imts.data.versions import DataRef, VersionInfo, commit_version, load_rows
from imts.store.workspace import Workspace

# Latin words and numbers as tokens, each CJK character as a token (Chinese has no spaces).
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3400-\u9fff\uf900-\ufaff]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def normalise(text: str) -> str:
    return " ".join(tokens(text))


def ngrams(toks: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def prompt_text(row: dict[str, Any]) -> str:
    if "messages" not in row:  # other formats: their prompt or text (see schemas.row_text)
        return str(row.get("prompt") or row.get("text") or "")
    return "\n".join(m["content"] for m in row["messages"][:-1])


def split_rows(
    rows: list[dict[str, Any]],
    ratios: tuple[float, float, float],
    seed: int,
    stratify_by: str | None,
) -> dict[str, list[dict[str, Any]]]:
    """Assign rows to train/val/test; within each stratum the same proportions (largest remainder)."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise InputError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    strata: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        strata[str(r.get(stratify_by)) if stratify_by else ""].append(r)
    rng = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for key in sorted(strata):
        group = strata[key]
        rng.shuffle(group)
        n = len(group)
        n_test = round(n * ratios[2])
        n_val = round(n * ratios[1])
        out["test"] += group[:n_test]
        out["val"] += group[n_test : n_test + n_val]
        out["train"] += group[n_test + n_val :]
    return out


def decontaminate(
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    n: int = 13,
    near_threshold: float | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drop held-out rows whose prompt equals a train prompt, shares an ``n``-gram with train, or (with
    ``near_threshold``) is a MinHash near-duplicate of a train prompt."""
    train_exact = {normalise(prompt_text(r)) for r in train}
    train_grams: set[tuple[str, ...]] = set()
    for r in train:
        train_grams |= ngrams(tokens(prompt_text(r)), n)
    kept, exact, overlap = [], [], []
    for r in held_out:
        toks = tokens(prompt_text(r))
        if " ".join(toks) in train_exact:
            exact.append(r)
        elif ngrams(toks, n) & train_grams:
            overlap.append(r)
        else:
            kept.append(r)
    near: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if near_threshold is not None and kept and train:
        from imts.data.dedup import near_matches

        matches = near_matches(
            [prompt_text(r) for r in kept], [prompt_text(r) for r in train], near_threshold
        )
        near = [(kept[i], train[j]) for i, j in sorted(matches.items())]
        kept = [r for i, r in enumerate(kept) if i not in matches]
    report: dict[str, Any] = {
        "exact_removed": len(exact),
        f"ngram{n}_removed": len(overlap),
        "examples": [{"id": r["id"], "reason": "exact", "prompt": prompt_text(r)[:200]} for r in exact[:5]]
        + [{"id": r["id"], "reason": f"{n}-gram", "prompt": prompt_text(r)[:200]} for r in overlap[:5]]
        + [
            {"id": r["id"], "reason": "near-duplicate", "train_id": t["id"], "prompt": prompt_text(r)[:200]}
            for r, t in near[:5]
        ],
    }
    if near_threshold is not None:
        report["near_removed"] = len(near)
    return kept, report


def split_version(
    ws: Workspace,
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
    rows = [{k: v for k, v in r.items() if k != "split"} for r in load_rows(ws, version)]
    if stratify_by and all(r.get(stratify_by) is None for r in rows):
        stratify_by = None
    parts = split_rows(rows, ratios, seed, stratify_by)
    report: dict[str, Any] = {}
    for name in ("val", "test"):
        parts[name], report[name] = decontaminate(parts["train"], parts[name], ngram, near_threshold)
    report["counts"] = {k: len(v) for k, v in parts.items()}
    progress.log(
        "split: "
        + ", ".join(f"{k} {len(v)}" for k, v in parts.items())
        + " | decontaminated: "
        + ", ".join(
            f"{k} -{report[k]['exact_removed']} exact -{report[k][f'ngram{ngram}_removed']} {ngram}-gram"
            for k in ("val", "test")
        )
    )
    out = [{**r, "split": name} for name in ("train", "val", "test") for r in parts[name]]
    return commit_version(
        ws,
        dataset=into or version.dataset,
        rows=out,
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
