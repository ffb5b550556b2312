"""What a run was made with besides its spec: code version, installed packages, hardware, seeds.

Recorded once when a run is created (``store.runs.begin``), compared by ``imts runs compare`` and
checked by ``imts runs reproduce``: a reproduction that differs in any of these is told so.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import imts


@lru_cache(maxsize=1)
def packages() -> dict[str, str]:
    """Every installed distribution's version, by normalised name (one process asks once)."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            out[name] = dist.version
    return dict(sorted(out.items()))


def code_version(where: Path | None = None) -> dict[str, Any]:
    """The git commit of the checkout ``imts`` runs from, whether its tracked files were changed (and a
    digest of the change), or only the package version when it runs from an installed wheel."""
    import git

    where = where or Path(imts.__file__).resolve().parent
    out: dict[str, Any] = {"imts": packages().get("imts", "unknown"), "commit": None, "dirty": None}
    try:
        repo = git.Repo(where, search_parent_directories=True)
        out["commit"] = repo.head.commit.hexsha
        diff = repo.git.diff("HEAD")
        out["dirty"] = bool(diff)
        out["diff_sha256"] = hashlib.sha256(diff.encode("utf-8")).hexdigest() if diff else None
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, ValueError):
        pass  # an installed wheel: its version is the code version
    return out


def hardware() -> dict[str, Any]:
    """The machine: CPU model and count, memory, accelerator names, torch threads."""
    import psutil
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": gpus,
        "torch_threads": torch.get_num_threads(),
    }


def capture(seed: int | None) -> dict[str, Any]:
    """The environment record of a run about to start with ``seed``."""
    return {
        "code": code_version(),
        "python": sys.version.split()[0],
        "packages": packages(),
        "hardware": hardware(),
        "seeds": {"seed": seed},
    }
