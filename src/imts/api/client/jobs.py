"""The API client's jobs (act, logs and their live stream), runs and their comparison reports, and
the closed loop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import TypeAdapter

from imts.api.client.base import ApiBase
from imts.api.client.transport import API, FINISHED, _checked, _sse
from imts.core.errors import ImtsError, NotFoundError
from imts.core.progress import NullProgress
from imts.jobs.views import JobLogEvent, JobView
from imts.store.runs import RunComparison, RunEventView, RunRecord, RunView

if TYPE_CHECKING:  # imported where used: a remote command loads only what it needs
    from imts.flywheel.service import IterationView, LoopView
    from imts.flywheel.spec import LoopSpec
    from imts.services.reports import ReportRequest


class ApiJobs(ApiBase):
    """A project's jobs, runs and loops on the server."""

    def list_jobs(self, tenant: str, project: str, state: str | None = None) -> list[JobView]:
        return self._get(list[JobView], f"/tenants/{tenant}/projects/{project}/jobs", state=state)  # type: ignore[no-any-return]

    def job_action(self, tenant: str, project: str, job_id: str, action: str) -> JobView:
        path = f"/tenants/{tenant}/projects/{project}/jobs/{job_id}/{action}"
        return self._call(JobView, "POST", path)  # type: ignore[no-any-return]

    def job_logs(self, tenant: str, project: str, job_id: str) -> str:
        return self._text(f"{self._project(tenant, project)}/jobs/{job_id}/logs")

    def follow_job_logs(self, tenant: str, project: str, job_id: str) -> Iterator[JobLogEvent]:
        """The job's logs live (server-sent events), then its end state; a broken connection resumes
        where it stopped (``Last-Event-ID``)."""
        path = f"{API}{self._project(tenant, project)}/jobs/{job_id}/logs/stream"
        last: str | None = None
        for attempt in range(6):
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.http.stream("GET", path, headers=headers, timeout=None) as r:
                    if not r.is_success:
                        r.read()
                        _checked(r)
                    for event, event_id, data in _sse(r.iter_lines()):
                        if event == "end":
                            yield JobLogEvent(state=data["state"])
                            return
                        if event == "log":
                            last = event_id or last
                            yield JobLogEvent(attempt=data["attempt"], text=data["text"])
                return
            except httpx.TransportError as exc:
                if attempt == 5:
                    raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
                time.sleep(2**attempt)

    def delete_job(self, tenant: str, project: str, job_id: str) -> tuple[str, bool]:
        path = f"{self._project(tenant, project)}/jobs/{job_id}"
        state = str(self._call(dict[str, Any], "DELETE", path)["state"])
        return state, state == "deleted"

    def list_runs(self, tenant: str, project: str, kind: str | None = None) -> list[RunView]:
        return self._get(list[RunView], f"{self._project(tenant, project)}/runs", kind=kind, limit=1000)  # type: ignore[no-any-return]

    def get_run(self, tenant: str, project: str, run_id: str) -> RunView:
        detail = self._get(dict[str, Any], f"{self._project(tenant, project)}/runs/{run_id}")
        return RunView.model_validate(detail["run"])

    def show_run(self, tenant: str, project: str, run_id: str) -> tuple[RunRecord, list[RunEventView]]:
        base = f"{self._project(tenant, project)}/runs/{run_id}"
        record = self._get(RunRecord, f"{base}/record")
        events = TypeAdapter(list[RunEventView]).validate_python(self._get(dict[str, Any], base)["events"])
        return record, events

    def compare_runs(self, tenant: str, project: str, run_ids: list[str]) -> RunComparison:
        return self._get(RunComparison, f"{self._project(tenant, project)}/runs/compare", run=run_ids)  # type: ignore[no-any-return]

    def write_report(
        self, tenant: str, project: str, request: ReportRequest, out: Path | None
    ) -> dict[str, Path]:
        """Build the comparison report on the server (into its workspace, audited), then download its
        files into the folder ``out`` here (default: ``RUN-LANG`` in the current folder)."""
        import typing

        from imts.services.reports import ReportFormat, ReportView

        base = f"{self._project(tenant, project)}/reports"
        body = request.model_dump(mode="json")
        view: ReportView = self._call(ReportView, "POST", base, json=body, timeout=None)
        out = out or Path(f"{view.run_id}-{request.lang}")
        out.mkdir(parents=True, exist_ok=True)
        return {
            fmt: self._download(f"{base}/{view.run_id}/{fmt}", out / f"report.{fmt}")
            for fmt in typing.get_args(ReportFormat)
        }

    def start_loop(self, tenant: str, project: str, spec: LoopSpec) -> LoopView:
        from imts.flywheel.service import LoopView

        body = spec.model_dump(mode="json", exclude_unset=True)
        return self._call(LoopView, "POST", f"{self._project(tenant, project)}/loops", json=body)  # type: ignore[no-any-return]

    def get_loop(self, tenant: str, project: str, loop_id: str | None) -> LoopView:
        from imts.flywheel.service import LoopView

        if loop_id:
            return self._get(LoopView, f"{self._project(tenant, project)}/loops/{loop_id}")  # type: ignore[no-any-return]
        loops = self.list_loops(tenant, project)
        if not loops:
            raise NotFoundError("no loop in this project yet: `imts loop start --intent ... --data ...`")
        return loops[0]

    def list_loops(self, tenant: str, project: str) -> list[LoopView]:
        from imts.flywheel.service import LoopView

        return self._get(list[LoopView], f"{self._project(tenant, project)}/loops")  # type: ignore[no-any-return]

    def loop_log(self, tenant: str, project: str, loop_id: str) -> list[IterationView]:
        from imts.flywheel.service import IterationView

        return self._get(list[IterationView], f"{self._project(tenant, project)}/loops/{loop_id}/log")  # type: ignore[no-any-return]

    def loop_action(self, tenant: str, project: str, loop_id: str, action: str) -> LoopView:
        from imts.flywheel.service import LoopView

        path = f"{self._project(tenant, project)}/loops/{loop_id}/{action}"
        return self._call(LoopView, "POST", path)  # type: ignore[no-any-return]

    def follow_loop(self, tenant: str, project: str, loop_id: str, progress: Any = None) -> LoopView:
        """Wait until the loop stops, finishes or fails (or waits for approval), each step's job live."""
        from imts.flywheel.service import StepView

        progress = progress or NullProgress()
        shown: set[str] = set()
        while True:
            view = self.get_loop(tenant, project, loop_id)
            if view.status != "running":
                return view
            path = f"{self._project(tenant, project)}/loops/{loop_id}/steps"
            steps: list[StepView] = self._get(list[StepView], path)
            step = next((s for s in reversed(steps) if s.job_id and s.job_id not in shown), None)
            if step is not None and step.job_id is not None and step.state not in (*FINISHED, "skipped"):
                shown.add(step.job_id)
                progress.log(f"[bold]iteration {step.iteration}: {step.phase}[/] (job {step.job_id})")
                self.follow_job(tenant, project, step.job_id, progress)
            else:
                time.sleep(1.0)

    def loop_report(self, tenant: str, project: str, loop_id: str, fmt: str, lang: str) -> str:
        path = f"{self._project(tenant, project)}/loops/{loop_id}/report"
        return self._text(path, format=fmt, lang=lang)
