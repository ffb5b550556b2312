"""The local backend's datasets: versions, imports, views, split, dedup, analyses, export,
embeddings, fixes and the review queue."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imts.cli.backend.base import LocalScopes

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from imts.analysis.pipeline import Analysis, AnalysisOptions
    from imts.analysis.service import AnalysisSummary
    from imts.cli.backend.protocol import OnQueued
    from imts.data.jobs import SplitResult
    from imts.data.vectors import EmbeddingInfo
    from imts.data.versions import VersionInfo
    from imts.data.views import (
        DatasetDiff,
        ExportResult,
        FieldStats,
        Lineage,
        RowsPage,
        SharedVersion,
        VersionDetail,
    )
    from imts.optimise.pii.scan import PiiScan
    from imts.optimise.service import ReviewView
    from imts.optimise.spec import FixReport, FixSpec


class LocalData(LocalScopes):
    """Datasets of this machine's workspace."""

    def list_datasets(self, tenant: str, project: str, dataset: str | None = None) -> list[VersionInfo]:
        from imts.data import service

        return service.list_versions(self._project(tenant, project), dataset)

    def import_data(
        self, tenant: str, project: str, source: str, name: str | None, *, map_: str | None,
        fmt: str | None, file_type: str | None, text_unit: str, on_error: str, append: bool,
        progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        from imts.data import service

        return service.import_file(
            self._project(tenant, project), source, name, map_=map_, fmt=fmt, file_type=file_type,
            text_unit=text_unit, on_error=on_error, progress=progress, append=append,
        )  # fmt: skip

    def import_query(
        self, tenant: str, project: str, url: str, sql: str, name: str, *, map_: str | None,
        fmt: str | None, on_error: str, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        from imts.data import service

        return service.import_query(
            self._project(tenant, project), url, sql, name, map_=map_, fmt=fmt, on_error=on_error,
            progress=progress,
        )  # fmt: skip

    def show_dataset(self, tenant: str, project: str, ref: str, rows: int) -> VersionDetail:
        from imts.data import service

        return service.show(self._project(tenant, project), ref, rows)

    def preview_dataset(
        self, tenant: str, project: str, ref: str, where: str | None, limit: int, page: int
    ) -> RowsPage:
        from imts.data import service

        return service.preview(self._project(tenant, project), ref, where, limit, page)

    def dataset_stats(self, tenant: str, project: str, ref: str, where: str | None) -> FieldStats:
        from imts.data import service

        return service.stats(self._project(tenant, project), ref, where)

    def split_dataset(
        self, tenant: str, project: str, ref: str, ratios: tuple[float, float, float], seed: int,
        stratify_by: str | None, ngram: int, near: float | None, into: str | None, progress: Any = None,
    ) -> SplitResult:  # fmt: skip
        spec = {"data": ref, "ratios": ratios, "seed": seed, "stratify_by": stratify_by, "ngram": ngram,
                "near": near, "into": into}  # fmt: skip
        return self.execute(tenant, project, "split", spec, inline=True, progress=progress)  # type: ignore[no-any-return]

    def dedup_dataset(
        self, tenant: str, project: str, ref: str, threshold: float | None, num_perm: int,
        into: str | None, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        from imts.data import service

        return service.dedup(self._project(tenant, project), ref, threshold, num_perm, into, progress)

    def diff_datasets(self, tenant: str, project: str, a: str, b: str, by: str) -> DatasetDiff:
        from imts.data import service

        return service.diff(self._project(tenant, project), a, b, by)  # type: ignore[arg-type]

    def rollback_dataset(self, tenant: str, project: str, dataset: str, to: str) -> VersionInfo:
        from imts.data import service

        return service.rollback(self._project(tenant, project), dataset, to)

    def dataset_lineage(self, tenant: str, project: str, dataset: str) -> Lineage:
        from imts.data import service

        return service.lineage(self._project(tenant, project), dataset)

    def share_dataset(self, tenant: str, project: str, ref: str, with_project: str) -> SharedVersion:
        from imts.data import service

        return service.share(self._project(tenant, project), ref, with_project)

    def analyze(
        self, tenant: str, project: str, ref: str, intent: str, lang: str | None,
        opts: AnalysisOptions, chat: Any = None, progress: Any = None,
    ) -> Analysis:  # fmt: skip
        from imts.analysis import service

        ctx = self._project(tenant, project)
        return service.analyze(ctx, ref, intent, lang=lang, opts=opts, backend=chat, progress=progress)

    def list_analyses(self, tenant: str, project: str, ref: str) -> list[AnalysisSummary]:
        from imts.analysis import service

        return service.list_analyses(self._project(tenant, project), ref)

    def get_analysis(self, tenant: str, project: str, ref: str, analysis_id: str | None) -> Analysis:
        from imts.analysis import service

        return service.get_analysis(self._project(tenant, project), ref, analysis_id)

    def analysis_report(self, tenant: str, project: str, ref: str, fmt: str, analysis_id: str | None) -> str:
        from imts.analysis import service

        return service.report_path(self._project(tenant, project), ref, fmt, analysis_id).read_text("utf-8")

    def analysis_location(self, tenant: str, project: str, ref: str, analysis_id: str) -> str:
        return str(self._project(tenant, project).artifacts.path(f"analyses/{analysis_id}"))

    def export_dataset(
        self, tenant: str, project: str, ref: str, dest: Path, fmt: str | None
    ) -> ExportResult:
        from imts.data import service

        return service.export_version(self._project(tenant, project), ref, dest, fmt)

    def embed_dataset(self, tenant: str, project: str, ref: str, progress: Any = None) -> EmbeddingInfo:
        from imts.data import service

        return service.embed(self._project(tenant, project), ref, progress)

    def plan_fix(self, tenant: str, project: str, spec: FixSpec) -> FixReport:
        from imts.optimise import service

        return service.plan_fix(self._project(tenant, project), spec)

    def fix_dataset(
        self, tenant: str, project: str, spec: FixSpec, inline: bool | None, progress: Any = None,
        on_queued: OnQueued | None = None,
    ) -> FixReport:  # fmt: skip
        """Run the fix here (``inline``, the default on this machine) or as a job followed to its end."""
        from imts.jobs import service as jobs

        sub = jobs.Submission("data_fix", spec.model_dump(mode="json"), request=jobs.Request(cpus=1))
        ctx = self._project(tenant, project)
        inline = True if inline is None else inline
        return jobs.execute(ctx, sub, inline=inline, progress=progress, on_queued=on_queued)  # type: ignore[no-any-return]

    def pii_scan(self, tenant: str, project: str, ref: str, progress: Any = None) -> PiiScan:
        from imts.optimise import service

        return service.pii_scan(self._project(tenant, project), ref, progress)

    def list_reviews(self, tenant: str, project: str, status: str | None) -> list[ReviewView]:
        from imts.optimise import service

        return service.list_reviews(self._project(tenant, project), status)

    def decide_review(
        self, tenant: str, project: str, item_id: str, accept: bool, reason: str = ""
    ) -> ReviewView:
        from imts.optimise import service

        return service.decide(self._project(tenant, project), item_id, accept, reason)

    def commit_reviewed(self, tenant: str, project: str, fix_version: str) -> VersionInfo:
        from imts.optimise import service

        return service.commit_reviewed(self._project(tenant, project), fix_version)
