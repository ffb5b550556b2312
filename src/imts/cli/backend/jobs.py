"""The local backend's jobs (submit, act, logs), runs and their comparison reports, and the closed
loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imts.cli.backend.base import LocalScopes

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from pydantic import BaseModel

    from imts.flywheel.service import IterationView, LoopView
    from imts.flywheel.spec import LoopSpec
    from imts.jobs.pool import Request
    from imts.jobs.views import JobEventView, JobLogEvent, JobView
    from imts.services.reports import ReportRequest
    from imts.store.runs import RunComparison, RunEventView, RunRecord, RunView


class LocalJobs(LocalScopes):
    """Jobs, runs and loops of this machine's workspace."""

    def list_jobs(self, tenant: str, project: str, state: str | None = None) -> list[JobView]:
        from imts.jobs import service

        ctx = self._project(tenant, project)
        service.settle(ctx, wait=True)  # a CLI command reads once: current state, not throttled
        return service.list_jobs(ctx, state)

    def show_job(self, tenant: str, project: str, job_id: str) -> tuple[JobView, list[JobEventView]]:
        from imts.jobs import service

        ctx = self._project(tenant, project)
        service.settle(ctx, wait=True)
        return service.get(ctx, job_id), service.events(ctx, job_id)

    def job_action(self, tenant: str, project: str, job_id: str, action: str) -> JobView:
        from imts.jobs import service

        ctx = self._project(tenant, project)
        service.request(ctx, job_id, action)
        return service.get(ctx, job_id)

    def submit_job(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *, name: str = "",
        priority: str = "normal", preemptible: bool | None = None, workers: int = 1,
        request: Request | None = None, retries: int = 1,
    ) -> str:  # fmt: skip
        from imts.jobs import service

        ctx = self._project(tenant, project)
        sub = self._submission(ctx, kind, spec, False, name, priority, preemptible, workers, request, retries)
        job_id = service.submit(ctx, sub)
        service.settle(ctx)
        return job_id

    def job_logs(self, tenant: str, project: str, job_id: str) -> str:
        from imts.jobs import service
        from imts.jobs.executors import log_path

        ctx = self._project(tenant, project)
        job = service.get(ctx, job_id)
        parts = []
        for a in range(1, job.attempt + 1):
            path = log_path(ctx.settings, job_id, a)
            if path.exists():
                parts.append(f"== attempt {a} ==\n" + path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    def follow_job_logs(self, tenant: str, project: str, job_id: str) -> Iterator[JobLogEvent]:
        """The latest attempt's log as it grows (a new attempt from its start), then the end state;
        scheduling passes run here while no scheduler daemon runs."""
        import time

        from imts.jobs import service
        from imts.jobs.executors import log_path
        from imts.jobs.views import JobLogEvent

        ctx = self._project(tenant, project)
        attempt, pos = 0, 0
        while True:
            service.settle(ctx)
            row = service.get(ctx, job_id)
            if row.attempt != attempt:
                attempt, pos = row.attempt, 0
            path = log_path(ctx.settings, job_id, attempt)
            if path.exists():
                with path.open("r", encoding="utf-8", errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
                if chunk:
                    yield JobLogEvent(attempt=attempt, text=chunk)
            if row.state in ("succeeded", "failed", "cancelled", "paused"):
                yield JobLogEvent(attempt=attempt, state=row.state)
                return
            time.sleep(0.5)

    def delete_job(self, tenant: str, project: str, job_id: str) -> tuple[str, bool]:
        """The state the delete led to (``deleted``) and whether the scheduler has handled it yet."""
        from imts.jobs import service

        done = service.request_and_wait(self._project(tenant, project), job_id, "delete")
        return ("deleted" if done.job is None else done.job.state), done.handled

    def list_runs(self, tenant: str, project: str, kind: str | None = None) -> list[RunView]:
        from imts.store import runs

        return runs.search(self._project(tenant, project), kind=kind)

    def get_run(self, tenant: str, project: str, run_id: str) -> RunView:
        from imts.store import runs

        return runs.get(self._project(tenant, project), run_id)

    def show_run(self, tenant: str, project: str, run_id: str) -> tuple[RunRecord, list[RunEventView]]:
        from imts.store import runs

        ctx = self._project(tenant, project)
        return runs.record(ctx, run_id), runs.events(ctx, run_id)

    def compare_runs(self, tenant: str, project: str, run_ids: list[str]) -> RunComparison:
        from imts.store import runs

        return runs.compare(self._project(tenant, project), run_ids)

    def write_report(
        self, tenant: str, project: str, request: ReportRequest, out: Path | None
    ) -> dict[str, Path]:
        """Build the comparison report into the workspace (``reports/RUN``, audited as over the API): its
        files there, or copied into the folder ``out``."""
        import shutil
        import typing

        from imts.services import reports

        ctx = self._project(tenant, project)
        view = reports.generate(ctx, request)
        paths = {
            fmt: reports.report_file(ctx, view.run_id, fmt) for fmt in typing.get_args(reports.ReportFormat)
        }
        if out is None:
            return paths
        out.mkdir(parents=True, exist_ok=True)
        return {fmt: Path(shutil.copyfile(path, out / path.name)) for fmt, path in paths.items()}

    def start_loop(self, tenant: str, project: str, spec: LoopSpec) -> LoopView:
        from imts.flywheel import service

        return service.start(self._project(tenant, project), spec)

    def get_loop(self, tenant: str, project: str, loop_id: str | None) -> LoopView:
        """The loop (the project's latest when ``loop_id`` is None); looking moves it on when no
        scheduler daemon runs."""
        from imts.core.errors import NotFoundError
        from imts.flywheel import service
        from imts.jobs.service import settle

        ctx = self._project(tenant, project)
        settle(ctx)
        if loop_id:
            return service.get(ctx, loop_id)
        loops = service.list_loops(ctx, limit=1)
        if not loops:
            raise NotFoundError("no loop in this project yet: `imts loop start --intent ... --data ...`")
        return loops[0]

    def list_loops(self, tenant: str, project: str) -> list[LoopView]:
        from imts.flywheel import service

        return service.list_loops(self._project(tenant, project))

    def loop_log(self, tenant: str, project: str, loop_id: str) -> list[IterationView]:
        from imts.flywheel import service

        return service.iterations(self._project(tenant, project), loop_id)

    def loop_action(self, tenant: str, project: str, loop_id: str, action: str) -> LoopView:
        """``stop``, ``resume`` or ``approve`` the loop; its view after the request."""
        from imts.flywheel import service

        act = {"stop": service.stop, "resume": service.resume, "approve": service.approve}[action]
        return act(self._project(tenant, project), loop_id)

    def follow_loop(self, tenant: str, project: str, loop_id: str, progress: Any = None) -> LoopView:
        from imts.flywheel import service

        return service.follow(self._project(tenant, project), loop_id, progress)

    def loop_report(self, tenant: str, project: str, loop_id: str, fmt: str, lang: str) -> str:
        """The loop's report (``html`` or ``md``), written now into the workspace, as text."""
        from imts.flywheel import report, service

        ctx = self._project(tenant, project)
        paths = report.write(ctx, service.get(ctx, loop_id), service.iterations(ctx, loop_id), lang)
        return Path(paths[fmt]).read_text(encoding="utf-8")
