"""Disk a finished training run keeps: IMTS's defaults against keeping everything (issue 20).

The same 4-step SmolLM2-135M training (full fine-tune, and LoRA) twice in one workspace: once with the
old behaviour's settings (``keep_checkpoints=true``, and ``merge=true`` for LoRA) and once with the
defaults (checkpoints removed after success, no ``merged/``: evaluation merges the adapter on load).
Bytes are counted once per inode (``du``'s way); "best/ as a byte copy" adds what ``best/`` cost
before it was made of hard links.

    PYTHONPATH=src python benchmarks/run_disk.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from imts.core.settings import Settings
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.registry import base_models
from imts.services.startup import local_context
from imts.train.service import train
from imts.train.spec import RunSpec

COMMON = ["max_steps=4", "batch_size=2", "max_seq_len=128", "save_every=2", "eval_every=2", "warmup_steps=1"]


def usage(folder: Path) -> tuple[int, int]:
    """(bytes counted once per inode, bytes that best/ holds as hard links)."""
    seen: set[tuple[int, int]] = set()
    total = linked = 0
    for f in folder.rglob("*"):
        if not f.is_file():
            continue
        st = f.lstat()
        if (st.st_dev, st.st_ino) in seen:
            linked += st.st_size
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_size
    return total, linked


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="imts-disk-"))
    ctx = local_context(Settings(workspace=root / "ws"))
    base_models.pull(ctx, "smollm2-135m-instruct")
    rows = [
        {"prompt": f"What is {a} + {b}?", "response": f"{a} + {b} = {a + b}. The answer is {a + b}."}
        for a in range(10, 30)
        for b in range(3, 9)
    ]
    data = root / "add.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ref = split_version(ctx, import_file(ctx, data, name="add"), seed=0).ref  # a val split: best/ is kept
    results = {}
    for method, old in (
        ("sft_full", ["keep_checkpoints=true"]),
        ("sft_lora", ["keep_checkpoints=true", "merge=true"]),
    ):
        for label, extra in (("keep everything", old), ("IMTS defaults", [])):
            spec = RunSpec.from_sources(
                overrides=[*COMMON, "val_max_items=8", f"method={method}", *extra],
                base_model="smollm2-135m-instruct",
                data=ref,
            )
            t0 = time.perf_counter()
            run_id = train(ctx, spec)
            kept, linked = usage(ctx.artifacts.path(f"runs/{run_id}"))
            results[(method, label)] = (kept, linked)
            print(
                f"{method:9s} {label:16s} {kept / 1e6:8.1f} MB kept"
                + (f" (+{linked / 1e6:.1f} MB had best/ been a byte copy)" if linked else "")
                + f"  [{time.perf_counter() - t0:.0f}s]",
                flush=True,
            )
    for method in ("sft_full", "sft_lora"):
        old_kept, old_linked = results[(method, "keep everything")]
        new_kept, _ = results[(method, "IMTS defaults")]
        print(
            f"{method}: before {(old_kept + old_linked) / 1e6:.1f} MB, now {new_kept / 1e6:.1f} MB: "
            f"{(old_kept + old_linked) / max(new_kept, 1):.1f}x less disk"
        )
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
