"""The API client's datasets: versions, imports (URLs and chunked uploads), views, split, dedup,
analyses, export, embeddings, fixes and the review queue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from imts.api.client.base import ApiBase
from imts.api.client.transport import CHUNK, REMOTE_SOURCES, upload_file
from imts.core.errors import ImtsError, InputError
from imts.core.progress import NullProgress
from imts.data.jobs import SplitResult
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
from imts.jobs.pool import Request
from imts.jobs.views import JobView

if TYPE_CHECKING:  # imported where used: a remote command loads only what it needs
    from imts.analysis.pipeline import Analysis, AnalysisOptions
    from imts.analysis.service import AnalysisSummary
    from imts.data.vectors import EmbeddingInfo
    from imts.optimise.pii.scan import PiiScan
    from imts.optimise.service import ReviewView
    from imts.optimise.spec import FixReport, FixSpec


class ApiData(ApiBase):
    """A project's datasets on the server."""

    def list_datasets(self, tenant: str, project: str, dataset: str | None = None) -> list[VersionInfo]:
        path = f"/tenants/{tenant}/projects/{project}/datasets"
        return self._get(list[VersionInfo], path, dataset=dataset)  # type: ignore[no-any-return]

    def import_data(
        self, tenant: str, project: str, source: str, name: str | None, *, map_: str | None,
        fmt: str | None, file_type: str | None, text_unit: str, on_error: str, append: bool,
        progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        """A URL the server fetches itself (http, https, s3), or a file of this machine uploaded in
        chunks (a bar per chunk) and imported as ``imts data import`` does on the server."""
        if append:
            raise InputError(
                "--append works only on this machine's workspace: over the API, import the file as a "
                "version of its own (without --append)", field="append",
            )  # fmt: skip
        options = {"name": name, "map": map_, "format": fmt, "type": file_type, "text_unit": text_unit,
                   "on_error": on_error}  # fmt: skip
        if source.lower().startswith(REMOTE_SOURCES):
            path = f"{self._project(tenant, project)}/datasets/imports"
            body = {"source": source, **options}
            return self._call(VersionInfo, "POST", path, json=body, timeout=None)  # type: ignore[no-any-return]
        file = Path(source)
        if not file.is_file():
            raise InputError(f"no file {source} on this machine (a URL must start with http://, "
                             "https:// or s3://)", field="source")  # fmt: skip
        progress = progress or NullProgress()
        size = file.stat().st_size
        with progress.task(f"upload {file.name} ({size / 2**20:.1f} MiB)", -(-size // CHUNK) or None) as bar:
            bar.advance(0)

            def on_chunk(n: int, count: int) -> None:
                bar.advance(1, chunk=f"{n + 1}/{count}")

            try:
                version = upload_file(
                    self.http, tenant, project, file, on_chunk=on_chunk,
                    **{k: v for k, v in options.items() if v is not None},
                )  # fmt: skip
            except httpx.TransportError as exc:
                raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        return VersionInfo.model_validate(version)

    def import_query(
        self, tenant: str, project: str, url: str, sql: str, name: str, *, map_: str | None,
        fmt: str | None, on_error: str, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        """The rows of a query the server runs against a database *server* (no file databases)."""
        body = {"url": url, "sql": sql, "name": name, "map": map_, "format": fmt, "on_error": on_error}
        path = f"{self._project(tenant, project)}/datasets/queries"
        return self._call(VersionInfo, "POST", path, json=body, timeout=None)  # type: ignore[no-any-return]

    def show_dataset(self, tenant: str, project: str, ref: str, rows: int) -> VersionDetail:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}"
        return self._get(VersionDetail, path, rows=rows)  # type: ignore[no-any-return]

    def preview_dataset(
        self, tenant: str, project: str, ref: str, where: str | None, limit: int, page: int
    ) -> RowsPage:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/rows"
        return self._get(RowsPage, path, where=where, limit=limit, page=page)  # type: ignore[no-any-return]

    def dataset_stats(self, tenant: str, project: str, ref: str, where: str | None) -> FieldStats:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/stats"
        return self._get(FieldStats, path, where=where)  # type: ignore[no-any-return]

    def split_dataset(
        self, tenant: str, project: str, ref: str, ratios: tuple[float, float, float], seed: int,
        stratify_by: str | None, ngram: int, near: float | None, into: str | None, progress: Any = None,
    ) -> SplitResult:  # fmt: skip
        body = {"ratios": list(ratios), "seed": seed, "stratify_by": stratify_by, "ngram": ngram,
                "near": near, "into": into}  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/split"
        v: VersionInfo = self._call(VersionInfo, "POST", path, json=body, timeout=None)
        return SplitResult(version=v.ref, version_id=v.id, counts=v.stats.get("split", {}))

    def dedup_dataset(
        self, tenant: str, project: str, ref: str, threshold: float | None, num_perm: int,
        into: str | None, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        body = {"threshold": threshold or 0.7, "exact_only": threshold is None, "num_perm": num_perm,
                "into": into}  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/dedup"
        return self._call(VersionInfo, "POST", path, json=body, timeout=None)  # type: ignore[no-any-return]

    def diff_datasets(self, tenant: str, project: str, a: str, b: str, by: str) -> DatasetDiff:
        path = f"{self._project(tenant, project)}/datasets/refs/{a}/diff/{b}"
        return self._get(DatasetDiff, path, by=by)  # type: ignore[no-any-return]

    def rollback_dataset(self, tenant: str, project: str, dataset: str, to: str) -> VersionInfo:
        path = f"{self._project(tenant, project)}/datasets/{dataset}/rollback"
        return self._call(VersionInfo, "POST", path, json={"to": to})  # type: ignore[no-any-return]

    def dataset_lineage(self, tenant: str, project: str, dataset: str) -> Lineage:
        return self._get(Lineage, f"{self._project(tenant, project)}/datasets/{dataset}/lineage")  # type: ignore[no-any-return]

    def share_dataset(self, tenant: str, project: str, ref: str, with_project: str) -> SharedVersion:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/shares"
        return self._call(SharedVersion, "POST", path, json={"project": with_project})  # type: ignore[no-any-return]

    def analyze(
        self, tenant: str, project: str, ref: str, intent: str, lang: str | None,
        opts: AnalysisOptions, chat: Any = None, progress: Any = None,
    ) -> Analysis:  # fmt: skip
        """Analyse on the server (in the request; a refused fit check is a 409 with its reason), then
        read the analysis in full."""
        from imts.analysis.service import AnalysisSummary

        if chat is not None:
            raise InputError("over the API the analysis uses the rules backend (leave out --backend)",
                             field="backend")  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analyses"
        body = {**opts.model_dump(mode="json"), "intent": intent, "lang": lang}
        done: AnalysisSummary = self._call(AnalysisSummary, "POST", path, json=body, timeout=None)
        return self.get_analysis(tenant, project, ref, done.id)

    def list_analyses(self, tenant: str, project: str, ref: str) -> list[AnalysisSummary]:
        from imts.analysis.service import AnalysisSummary

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analyses"
        return self._get(list[AnalysisSummary], path)  # type: ignore[no-any-return]

    def get_analysis(self, tenant: str, project: str, ref: str, analysis_id: str | None) -> Analysis:
        from imts.analysis.pipeline import Analysis

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analysis"
        return self._get(Analysis, path, id=analysis_id)  # type: ignore[no-any-return]

    def analysis_report(self, tenant: str, project: str, ref: str, fmt: str, analysis_id: str | None) -> str:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analysis/report"
        return self._text(path, format=fmt, id=analysis_id)

    def analysis_location(self, tenant: str, project: str, ref: str, analysis_id: str) -> str:
        return f"on {self.server}: imts data analysis {ref} --id {analysis_id} --format html|md|json"

    def export_dataset(
        self, tenant: str, project: str, ref: str, dest: Path, fmt: str | None
    ) -> ExportResult:
        """The rows streamed into ``dest`` (a temporary file beside it, renamed once whole): JSON Lines or
        Parquet; a Hugging Face folder is written only on the server's own workspace."""
        from imts.data.export import count_rows, format_of

        fmt = fmt or format_of(dest)
        if fmt == "hf":
            raise InputError("over the API a version is exported as .jsonl or .parquet (a Hugging Face "
                             "folder is written only on the server's workspace)", field="format")  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/export"
        dest.parent.mkdir(parents=True, exist_ok=True)
        rows = self._download(path, dest, {"format": fmt}, lambda tmp: count_rows(tmp, fmt))  # type: ignore[arg-type]
        return ExportResult(path=str(dest), format=fmt, rows=rows)

    def embed_dataset(self, tenant: str, project: str, ref: str, progress: Any = None) -> EmbeddingInfo:
        from imts.data.vectors import EmbeddingInfo

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/embeddings"
        return self._call(EmbeddingInfo, "POST", path, timeout=None)  # type: ignore[no-any-return]

    def _fix_body(self, spec: FixSpec, job: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = spec.model_dump(mode="json", exclude={"data"}, exclude_defaults=True)
        return {"fix": fields, **({"job": job} if job else {})}

    def plan_fix(self, tenant: str, project: str, spec: FixSpec) -> FixReport:
        from imts.optimise.spec import FixReport

        path = f"{self._project(tenant, project)}/datasets/refs/{spec.data}/fix/plan"
        return self._call(FixReport, "POST", path, json=self._fix_body(spec), timeout=None)  # type: ignore[no-any-return]

    def fix_dataset(
        self, tenant: str, project: str, spec: FixSpec, inline: bool | None, progress: Any = None,
        on_queued: Callable[[str], None] | None = None,
    ) -> FixReport:  # fmt: skip
        """The fix as a ``data_fix`` job on the server's pool, followed to its end: its report."""
        from imts.optimise.spec import FixReport

        if inline:
            raise InputError(
                "--inline runs in this process, on this machine's workspace: over the API the fix runs as "
                "a job on the server's pool (--job)",
                field="inline",
            )
        path = f"{self._project(tenant, project)}/datasets/refs/{spec.data}/fix"
        job = {"request": Request(cpus=1).model_dump(mode="json")}
        queued: JobView = self._call(JobView, "POST", path, json=self._fix_body(spec, job))
        if on_queued is not None:
            on_queued(queued.id)
        done = self.follow_job(tenant, project, queued.id, progress)
        if done.state != "succeeded":
            raise ImtsError(f"job {done.id} {done.state}: {done.error or done.reason}")
        return FixReport.model_validate(done.result)

    def pii_scan(self, tenant: str, project: str, ref: str, progress: Any = None) -> PiiScan:
        from imts.optimise.pii.scan import PiiScan

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/pii"
        return self._call(PiiScan, "GET", path, timeout=None)  # type: ignore[no-any-return]

    def list_reviews(self, tenant: str, project: str, status: str | None) -> list[ReviewView]:
        from imts.optimise.service import ReviewView

        path = f"{self._project(tenant, project)}/reviews"
        return self._get(list[ReviewView], path, status=status or "all")  # type: ignore[no-any-return]

    def decide_review(
        self, tenant: str, project: str, item_id: str, accept: bool, reason: str = ""
    ) -> ReviewView:
        from imts.optimise.service import ReviewView

        path = f"{self._project(tenant, project)}/reviews/{item_id}"
        return self._call(ReviewView, "POST", path, json={"accept": accept, "reason": reason})  # type: ignore[no-any-return]

    def commit_reviewed(self, tenant: str, project: str, fix_version: str) -> VersionInfo:
        path = f"{self._project(tenant, project)}/datasets/refs/{fix_version}/reviewed"
        return self._call(VersionInfo, "POST", path, timeout=None)  # type: ignore[no-any-return]
