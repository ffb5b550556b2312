"""What each project stores: the bytes behind its storage quota, measured on disk.

A project owns the Parquet shards of its datasets' versions, the folders of its runs (checkpoints,
adapters, merged weights, TensorBoard files), the reports of its evaluation runs, and its jobs' logs.
Shards are content-addressed and may be shared: a shard counts once per project that uses it (what
the project would store alone), so the projects' totals can exceed the disk's. Base models live in the
shared model cache and count to nobody; so do HPO study reports (a few kilobytes).

Measuring walks the run folders, so results are cached per process for ``storage_refresh_s``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from imts.jobs.store import project_keys
from imts.store.artifacts import shard_key
from imts.store.models import Dataset, DatasetVersion, JobRecord, Run
from imts.store.workspace import Workspace

GIB = 2**30


@dataclass
class ProjectStorage:
    """Bytes a project stores, by kind."""

    datasets: int = 0
    runs: int = 0
    reports: int = 0
    job_logs: int = 0

    @property
    def total(self) -> int:
        return self.datasets + self.runs + self.reports + self.job_logs


def tree_bytes(path: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes of the files under ``path`` (a file or a folder); hard links count once."""
    seen = seen if seen is not None else set()
    total = 0
    stack = [path]
    while stack:
        p = stack.pop()
        try:
            st = p.lstat()
        except OSError:
            continue
        if os.path.isdir(p) and not p.is_symlink():
            try:
                stack.extend(p.iterdir())
            except OSError:
                continue
        elif (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def measure(ws: Workspace) -> dict[str, ProjectStorage]:
    """Project key (``TENANT/PROJECT``) -> what it stores now (walks the artifact store)."""
    arts = ws.settings.artifacts_dir
    out: dict[str, ProjectStorage] = defaultdict(ProjectStorage)
    with ws.session() as s:
        names = project_keys(s)
        shards: dict[str, set[str]] = defaultdict(set)
        for project_id, digests in s.execute(
            select(Dataset.project_id, DatasetVersion.shards).join(
                DatasetVersion, DatasetVersion.dataset_id == Dataset.id
            )
        ).tuples():
            shards[project_id].update(digests)
        runs = s.execute(select(Run.project_id, Run.id)).tuples().all()
        jobs = s.execute(select(JobRecord.project_id, JobRecord.id)).tuples().all()
    for project_id, digests in shards.items():
        out[names.get(project_id, project_id)].datasets = sum(
            tree_bytes(ws.artifacts.path(shard_key(d))) for d in digests
        )
    for project_id, run_id in runs:
        p = out[names.get(project_id, project_id)]
        p.runs += tree_bytes(arts / "runs" / run_id)
        p.reports += tree_bytes(arts / "reports" / run_id)
    for project_id, job_id in jobs:
        out[names.get(project_id, project_id)].job_logs += tree_bytes(arts / "jobs" / job_id)
    return dict(out)


_CACHE: dict[str, tuple[float, dict[str, ProjectStorage]]] = {}


def usage(ws: Workspace, max_age_s: float | None = None) -> dict[str, ProjectStorage]:
    """``measure`` at most every ``max_age_s`` (default ``storage_refresh_s``) in this process."""
    max_age = ws.settings.storage_refresh_s if max_age_s is None else max_age_s
    key = str(ws.settings.workspace) + "|" + ws.settings.db_url
    hit = _CACHE.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    result = measure(ws)
    _CACHE[key] = (now, result)
    return result


def fmt_bytes(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"
