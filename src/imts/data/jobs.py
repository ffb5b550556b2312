"""The ``split`` job kind: a seeded, decontaminated train/val/test split; a requeued job makes one version."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from imts.jobs.registry import JobContext, JobKind, register
from imts.store.context import Context


class SplitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    stratify_by: str | None = "category"
    ngram: int = Field(13, ge=1)
    near: float | None = Field(None, description="Also drop val/test near-duplicates (Jaccard threshold).")
    into: str | None = Field(None, description="Write into this (new) dataset.")


class SplitResult(BaseModel):
    version: str  # NAME@N
    version_id: str
    counts: dict[str, int] = {}  # rows per split


def run_split(job: JobContext, spec: SplitJob) -> SplitResult:
    from imts.data.split import split_version
    from imts.data.versions import resolve

    source = resolve(job.ctx, spec.data)
    found = _split_made_by(job, spec, source.version.id)
    if found is not None:  # an earlier attempt committed it, then died or was stopped before reporting
        job.progress.log(f"split {found.version} was made by an earlier attempt of this job: kept")
        return found
    v = split_version(
        job.ctx,
        source,
        spec.ratios,
        spec.seed,
        spec.stratify_by,
        spec.ngram,
        job.progress,
        spec.near,
        spec.into,
    )
    return SplitResult(version=v.ref, version_id=v.id, counts=v.stats.get("split", {}))


def _split_made_by(job: JobContext, spec: SplitJob, parent_id: str) -> SplitResult | None:
    """The split this job already committed, if any: same parent, same parameters, made since the job
    was submitted. A split version is committed atomically (one transaction), so this makes the job
    idempotent: a requeued split job ends with exactly one version."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from imts.store.models import Dataset, DatasetVersion, VersionParent

    if job.attempt == 1:
        return None
    with job.ctx.session() as s:
        rows = s.execute(
            select(DatasetVersion, Dataset.name)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .join(VersionParent, VersionParent.version_id == DatasetVersion.id)
            .where(
                VersionParent.parent_id == parent_id,
                DatasetVersion.operation == "split",
                DatasetVersion.created_at >= datetime.fromtimestamp(job.submitted_ts, UTC),
            )
            .order_by(DatasetVersion.number)
        ).all()
        for v, name in rows:
            p = v.params
            if (p.get("ratios"), p.get("seed"), p.get("decontaminate_ngram")) == (
                list(spec.ratios),
                spec.seed,
                spec.ngram,
            ) and p.get("stratify_by") in (spec.stratify_by, None):
                return SplitResult(
                    version=f"{name}@{v.number}", version_id=v.id, counts=v.stats.get("split", {})
                )
    return None


def check_split(ctx: Context, spec: SplitJob) -> None:
    """Refuse an unknown dataset."""
    from imts.data.versions import resolve

    resolve(ctx, spec.data)


SPLIT = register(JobKind("split", SplitJob, run_split, SplitResult, check=check_split, writes=True))
