"""Quota usage: CPU- and GPU-hours of the quota period, summed in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from imts.jobs import service, store
from imts.jobs.pool import Request
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.store.context import Context
from imts.store.models import JobRecord


def test_usage_sums_finished_and_running_jobs_per_tenant(any_ws: Context) -> None:
    now = time.time()
    # The PostgreSQL database is the session's: the tenant may hold other tests' jobs already.
    before = store.snapshot(any_ws.ws, now, period_s=86_400).usage.get(any_ws.tenant)
    base_cpu, base_gpu = (before.cpu_hours, before.gpu_hours) if before else (0.0, 0.0)
    ids = [
        service.submit(any_ws, Submission("sleep", SleepJob(seconds=0), workers=1, request=Request(cpus=c)))
        for c in (1, 2, 1)
    ]
    other = service.submit(any_ws, Submission("sleep", SleepJob(seconds=0), request=Request(cpus=2)))
    other = service.submit(any_ws, Submission("sleep", SleepJob(seconds=0), request=Request(cpus=2)))
    with any_ws.session() as s:  # two finished in the period (600 s and 1,800 s of run time), one long ago
        ended = ((ids[0], 600.0, now - 60), (ids[1], 1800.0, now - 120), (ids[2], 3600.0, now - 10**6))
        for job_id, ran, finished in ended:
            s.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id)
                .values(state="succeeded", finished_ts=finished, data={"ran_s": ran})
            )
        s.execute(
            update(JobRecord).where(JobRecord.id == other).values(state="running", started_ts=now - 360)
        )
    usage = store.snapshot(any_ws.ws, now, period_s=86_400).usage[any_ws.tenant]
    # 1 CPU x 600 s + 2 CPUs x 1,800 s finished, + 2 CPUs x 360 s running; the old job is outside the period
    assert usage.cpu_hours - base_cpu == pytest.approx((600 + 3600 + 720) / 3600)
    assert usage.gpu_hours == base_gpu
