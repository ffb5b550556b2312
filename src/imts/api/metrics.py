"""``GET /metrics`` for Prometheus, and ``install``: the limits middleware, the metrics route and the
webhook delivery worker on an app.

Who may scrape: a platform administrator (an unscoped key or a session), or anyone presenting
``IMTS_METRICS_TOKEN`` as ``Authorization: Bearer <token>`` — a token for Prometheus alone, which opens
nothing else. The series:

- ``imts_api_request_duration_seconds{method,route,status}``: API latency by route template;
- ``imts_jobs{tenant,state}``: jobs by state;
- ``imts_queue_oldest_wait_seconds{tenant}``: how long the oldest queued job has waited;
- ``imts_job_queue_wait_seconds{tenant}``: submission-to-start waits of jobs started in the last hour;
- ``imts_training_tokens_per_second{tenant,project,run}``: running trainings' newest tokens/s.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from imts.api.deps import PLATFORM_ADMIN, WorkspaceDep, _mark, _principal
from imts.api.errors import ERROR_RESPONSES
from imts.api.limits import Failures, LimitsMiddleware
from imts.core.errors import AuthenticationError, PermissionDeniedError
from imts.store.models import JobRecord, Project, Run, Tenant
from imts.store.models import Metric as MetricRow
from imts.store.workspace import Workspace

WAIT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


class DatabaseCollector(Collector):
    """Jobs, queue waits and running trainings' throughput, read from the database at each scrape."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        jobs = GaugeMetricFamily("imts_jobs", "Jobs by tenant and state", labels=["tenant", "state"])
        oldest = GaugeMetricFamily(
            "imts_queue_oldest_wait_seconds", "How long the oldest queued job has waited", labels=["tenant"]
        )
        with self.ws.session() as s:
            for tenant, state, n in s.execute(
                select(JobRecord.tenant, JobRecord.state, func.count())
                .where(JobRecord.state != "deleted")
                .group_by(JobRecord.tenant, JobRecord.state)
            ):
                jobs.add_metric([tenant, state], n)
            for tenant, first in s.execute(
                select(JobRecord.tenant, func.min(JobRecord.submitted_ts))
                .where(JobRecord.state == "queued")
                .group_by(JobRecord.tenant)
            ):
                oldest.add_metric([tenant], max(0.0, now - first))
            waits: dict[str, list[float]] = {}
            for tenant, submitted, started in s.execute(
                select(JobRecord.tenant, JobRecord.submitted_ts, JobRecord.started_ts).where(
                    JobRecord.started_ts >= now - 3600
                )
            ):
                waits.setdefault(tenant, []).append(max(0.0, started - submitted))
            speed = GaugeMetricFamily(
                "imts_training_tokens_per_second",
                "Running trainings' newest tokens/s",
                labels=["tenant", "project", "run"],
            )
            running = s.execute(
                select(Run.id, Project.name, Tenant.name)
                .join(Project, Project.id == Run.project_id)
                .join(Tenant, Tenant.id == Project.tenant_id)
                .where(Run.kind == "train", Run.status == "running")
            ).all()
            for run_id, project, tenant in running:
                value = s.scalar(
                    select(MetricRow.value)
                    .where(MetricRow.run_id == run_id, MetricRow.key == "tokens_per_s")
                    .order_by(MetricRow.step.desc())
                    .limit(1)
                )
                if value is not None:
                    speed.add_metric([tenant, project, run_id], value)
        hist = HistogramMetricFamily(
            "imts_job_queue_wait_seconds",
            "Submission-to-start waits of jobs started in the last hour",
            labels=["tenant"],
        )
        for tenant, values in waits.items():
            buckets = [(str(b), sum(v <= b for v in values)) for b in WAIT_BUCKETS]
            hist.add_metric([tenant], [*buckets, ("+Inf", len(values))], sum(values))
        yield from (jobs, oldest, hist, speed)


def metrics_access(request: Request, ws: WorkspaceDep) -> None:
    """A platform administrator, or the bearer of ``IMTS_METRICS_TOKEN``."""
    token = ws.settings.metrics_token
    auth = request.headers.get("authorization", "")
    scheme, _, secret = auth.partition(" ")
    given = secret.strip().encode()
    if (
        token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given, token.get_secret_value().encode())
    ):
        return
    try:
        who = _principal(request, ws)
    except AuthenticationError:
        raise AuthenticationError(
            "send a platform administrator's API key or IMTS_METRICS_TOKEN as 'Authorization: Bearer ...'"
        ) from None
    if not who.acts_as_platform_admin:
        raise PermissionDeniedError("metrics are for platform administrators and IMTS_METRICS_TOKEN")


_mark(metrics_access, PLATFORM_ADMIN)
router = APIRouter(tags=["metrics"])
TEXT: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"},
}


@router.get(
    "/metrics", response_class=Response, responses=TEXT, openapi_extra={"x-permission": PLATFORM_ADMIN}
)
def metrics(request: Request, _: Annotated[None, Depends(metrics_access)]) -> Response:
    """Prometheus metrics: API latency, jobs by state, queue waits, running trainings' tokens/s."""
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    """Add the limits middleware, ``/metrics`` and the webhook worker (started with the app) to ``app``."""
    from imts.services.webhooks import DeliveryWorker

    ws: Workspace = app.state.ws
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(ws))
    app.state.metrics = registry
    app.state.failures = Failures(ws.settings)  # shared with the login route (per user name)
    app.add_middleware(LimitsMiddleware, settings=ws.settings, registry=registry, failures=app.state.failures)
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        worker = DeliveryWorker(ws)
        worker.start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            worker.stop()

    app.router.lifespan_context = lifespan
