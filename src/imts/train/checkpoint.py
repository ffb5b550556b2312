"""Checkpoints written atomically: a temporary folder renamed into place, then old ones pruned.

A checkpoint holds the trainable weights (``adapter/`` for LoRA, ``model.safetensors`` with every
weight for a full fine-tune), optimizer, LR scheduler, RNG states, the data position and
``run_config.yaml``, which is everything needed to resume a run exactly.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imts.core.files import share_like_siblings

_STEP = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    ckpt_root: Path,
    step: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data_state: dict[str, int],
    spec_yaml: str,
    extra: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write checkpoint ``step-NNNNNN`` atomically and keep only the newest ``keep_last``."""
    final = ckpt_root / f"step-{step:06d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, tmp)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
        tmp / "trainer_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps({"step": step, "data": data_state, **extra}, indent=2))
    (tmp / "run_config.yaml").write_text(spec_yaml, encoding="utf-8")
    share_like_siblings(tmp)  # safetensors writes its file 0600
    _replace_dir(tmp, final)
    for old in list_checkpoints(ckpt_root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_weights(model: Any, folder: Path) -> None:
    """The trainable weights: a PEFT model's adapter, otherwise the whole model (safetensors).

    ``save_model`` writes a tensor shared by two modules once (tied input embeddings and LM head).
    """
    if hasattr(model, "peft_config"):
        model.save_pretrained(folder / "adapter")
    else:
        from safetensors.torch import save_model

        save_model(model, str(folder / "model.safetensors"))


def load_weights(model: Any, ckpt: Path) -> None:
    """Put the weights saved by ``save_weights`` in ``ckpt`` back into ``model`` (in place)."""
    from safetensors.torch import load_file, load_model

    if (ckpt / "adapter").is_dir():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(ckpt / "adapter" / "adapter_model.safetensors"))
    else:
        load_model(model, str(ckpt / "model.safetensors"), device=str(next(model.parameters()).device))


def keep_best(ckpt: Path, ckpt_root: Path) -> Path:
    """Copy checkpoint ``ckpt`` to ``best/`` (atomically), where keep-last pruning never reaches it.

    The copy is hard links: a checkpoint's files are never rewritten (a newer one is a new folder),
    so ``best/`` costs no disk while ``ckpt`` exists.
    """
    tmp = ckpt_root / f".tmp-best-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ckpt, tmp, copy_function=_link_or_copy)
    best = ckpt_root / "best"
    _replace_dir(tmp, best)
    return best


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


def drop_all(ckpt_root: Path) -> int:
    """Remove every checkpoint of a finished run (weights, optimizer state, ``best/``); returns the
    bytes freed. The run's model is saved outside them (``adapter/``, ``model/``, ``merged/``)."""
    if not ckpt_root.is_dir():
        return 0
    seen: set[tuple[int, int]] = set()
    freed = 0
    for f in ckpt_root.rglob("*"):
        st = f.lstat()
        if f.is_file() and (st.st_dev, st.st_ino) not in seen:  # a hard link is counted once
            seen.add((st.st_dev, st.st_ino))
            freed += st.st_size
    shutil.rmtree(ckpt_root)
    return freed


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put ``tmp`` at ``final``; an existing ``final`` is moved aside first, so a kill at any point
    leaves either the old or the new folder complete (plus an ignored temporary one)."""
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of interrupted saves are ignored)."""
    if not ckpt_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest(ckpt_root: Path) -> Path | None:
    ckpts = list_checkpoints(ckpt_root)
    return ckpts[-1] if ckpts else None


def load_trainer_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(torch state: optimizer/scheduler/rng, json state: step/data position/...)."""
    torch_state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    return torch_state, json.loads((ckpt / "state.json").read_text())
