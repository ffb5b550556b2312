"""What every part of ``ApiClient`` stands on: one ``httpx.Client``, typed calls, the caller, and
a job submitted and followed to its end (the server runs long work of every resource as a job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import BaseModel, TypeAdapter

from imts.api.client.transport import API, FINISHED, M, _checked, _params, connect
from imts.core.errors import ImtsError, InputError
from imts.core.progress import NullProgress
from imts.jobs.pool import Request
from imts.jobs.views import JobEventView, JobProgressBar, JobView
from imts.services.identity import MeView


class ApiBase:
    """One ``httpx.Client`` to the server and the typed calls over it."""

    def __init__(self, server: str, key: str, timeout: float = 60.0) -> None:
        self.server = server.rstrip("/")
        self.http = connect(server, key, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, model: Any, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, API + path, **kwargs)
        except httpx.TransportError as exc:
            raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        return TypeAdapter(model).validate_python(_checked(r))

    def _get(self, model: type[M] | Any, path: str, **params: Any) -> Any:
        return self._call(model, "GET", path, params=_params(**params))

    def _text(self, path: str, **params: Any) -> str:
        try:
            r = self.http.get(API + path, params=_params(**params))
        except httpx.TransportError as exc:
            raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        if not r.is_success:
            _checked(r)
        return r.text

    def _download(
        self,
        path: str,
        dest: Path,
        params: dict[str, str] | None = None,
        check: Callable[[Path], Any] | None = None,
    ) -> Any:
        """The response to GET ``path`` streamed into ``dest`` (written beside it, renamed once whole):
        ``dest``, or what ``check`` returns, which reads the whole file before the rename (and raises
        on a bad one)."""
        import os

        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with self.http.stream("GET", API + path, params=params, timeout=None) as r:
                if not r.is_success:
                    r.read()
                    _checked(r)
                with tmp.open("wb") as f:
                    for block in r.iter_bytes():
                        f.write(block)
            checked = check(tmp) if check else dest
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return checked

    def _project(self, tenant: str, project: str) -> str:
        return f"/tenants/{tenant}/projects/{project}"

    def _model(self, tenant: str, project: str, ref: str) -> str:
        return f"{self._project(tenant, project)}/models/{ref}"

    def me(self) -> MeView:
        return self._get(MeView, "/me")  # type: ignore[no-any-return]

    def _node_cpus(self, tenant: str, workers: int) -> int:
        """CPU slots per worker when ``workers`` share the server pool's largest node out."""
        nodes = self._get(dict[str, Any], f"/tenants/{tenant}/pool")["nodes"]
        return max(1, max((int(n["cpus"]) for n in nodes), default=1) // workers)

    def submit_job(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *, name: str = "",
        priority: str = "normal", preemptible: bool | None = None, workers: int = 1,
        request: Request | None = None, retries: int = 1,
    ) -> str:  # fmt: skip
        """Queue a job on the server (refused at once, with the reason, when it could never run)."""
        request = request or Request(cpus=self._node_cpus(tenant, workers))
        body = {
            "kind": kind,
            "spec": spec.model_dump(mode="json") if isinstance(spec, BaseModel) else spec,
            "name": name, "priority": priority, "preemptible": preemptible, "workers": workers,
            "request": request.model_dump(mode="json"), "retries": retries,
        }  # fmt: skip
        job: JobView = self._call(JobView, "POST", f"{self._project(tenant, project)}/jobs", json=body)
        return job.id

    def show_job(self, tenant: str, project: str, job_id: str) -> tuple[JobView, list[JobEventView]]:
        detail = self._get(dict[str, Any], f"/tenants/{tenant}/projects/{project}/jobs/{job_id}")
        job = JobView.model_validate(detail["job"])
        return job, TypeAdapter(list[JobEventView]).validate_python(detail["events"])

    def follow_job(
        self, tenant: str, project: str, job_id: str, progress: Any = None, poll_s: float = 0.5,
        on_requeued: Callable[[str, str], None] | None = None,
    ) -> JobView:  # fmt: skip
        """Wait until the job has finished, its live progress on ``progress`` (the server moves it on
        as it is looked at when no scheduler daemon runs)."""
        bar = JobProgressBar(progress or NullProgress())
        try:
            while True:
                job, events = self.show_job(tenant, project, job_id)
                if bar.show(job) and on_requeued is not None:
                    why = [e.message for e in events if "-> queued" in e.message]
                    on_requeued(job_id, why[-1] if why else "requeued")
                if job.state in FINISHED:
                    return job
                time.sleep(poll_s)
        finally:
            bar.close()

    def execute(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *,
        result: type[Any] | None = None, inline: bool = False, name: str = "", priority: str = "normal",
        preemptible: bool | None = None, workers: int = 1, request: Request | None = None,
        retries: int = 1, progress: Any = None, on_queued: Callable[[str], None] | None = None,
        on_requeued: Callable[[str, str], None] | None = None,
    ) -> Any:  # fmt: skip
        """Submit the job to the server and follow it to its end: its result as ``result`` (the kind's
        result model), or as JSON without one."""
        if inline:
            raise InputError("--inline runs in this process, on this machine's workspace: over the API "
                             "the work runs as a job on the server's pool (leave out --inline)",
                             field="inline")  # fmt: skip
        job_id = self.submit_job(
            tenant, project, kind, spec, name=name, priority=priority, preemptible=preemptible,
            workers=workers, request=request, retries=retries,
        )  # fmt: skip
        if on_queued is not None:
            on_queued(job_id)
        job = self.follow_job(tenant, project, job_id, progress, on_requeued=on_requeued)
        if job.state != "succeeded":
            raise ImtsError(f"job {job_id} {job.state}: {job.error or job.reason}")
        return result.model_validate(job.result) if result is not None else job.result
