"""What an evaluation of a dataset reference scores: the split it names, the ``test`` split by default,
or every row when asked for explicitly (``NAME@N:all``). Light on imports: the submit-time check of an
``eval`` job and the CLI use it without loading the model stack.
"""

from __future__ import annotations

from imts.core.errors import InputError
from imts.data.versions import DataRef, resolve
from imts.store.context import Context

ALL_ROWS = "all"  # NAME@N:all — every row of the version, whatever its splits, asked for explicitly


def eval_data(ctx: Context, data_ref: str) -> DataRef:
    """The rows an evaluation of ``data_ref`` scores: the split it names; without one, the ``test``
    split. ``NAME@N:all`` scores every row, on purpose.

    Raises:
        InputError: no split named and no ``test`` split: scoring every row silently would include
            rows the user trains on (or will, after a split); the message says how to choose.
    """
    base, sep, split = data_ref.rpartition(":")
    if sep and split == ALL_ROWS:
        ref = resolve(ctx, base)
        if ALL_ROWS not in ref.version.stats.get("split", {}):  # a real split named "all" wins
            return DataRef(ref.version, None)
    ref = resolve(ctx, data_ref)
    if ref.split is not None:
        return ref
    splits = ref.version.stats.get("split", {})
    if splits.get("test"):
        return DataRef(ref.version, "test")
    v = ref.version.ref
    if splits:
        have = ", ".join(f"{k} ({n} rows)" for k, n in splits.items())
        raise InputError(
            f"{v} has no test split (its splits: {have}): name the split to evaluate (--split val, or "
            f"{v}:val in a suite), or score every row on purpose with --split all ({v}:all)",
            field="data",
        )
    raise InputError(
        f"{v} has no splits, so evaluating it would score every row, including rows you train on or "
        f"will after a split: split it first (`imts data split {v}`) and evaluate the new version's "
        f"test split, or score every row on purpose with --split all ({v}:all in a suite)",
        field="data",
    )


def with_split(datasets: list[str], split: str | None) -> list[str]:
    """``datasets`` with ``:split`` added to each reference that names no split (``imts eval --split``).

    Raises:
        InputError: a reference already names another split.
    """
    if not split:
        return datasets
    out = []
    for d in datasets:
        named = d.rpartition(":")[2] if ":" in d else None
        if named is not None and named != split:
            raise InputError(f"--split {split} but the dataset reference {d} names split '{named}'")
        out.append(d if named else f"{d}:{split}")
    return out
