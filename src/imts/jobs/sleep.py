"""The ``sleep`` job kind: a drill for smoke tests, gangs, preemption and retries."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from imts.core.errors import Interrupted
from imts.jobs.registry import JobContext, JobKind, register


class SleepJob(BaseModel):
    """A trivial job for smoke tests and drills: waits, resumably; optionally appends its id to a file."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(1.0, ge=0)
    append_to: str | None = Field(None, description="Append the job id to this file when done.")
    fail: bool = Field(False, description="Fail instead of succeeding (to exercise retries).")


class SleepResult(BaseModel):
    slept_s: float


def run_sleep(job: JobContext, spec: SleepJob) -> SleepResult:
    done = float(job.data.get("done_s", 0.0))  # resumes where a preempted attempt stopped
    with job.progress.task("sleep", total=spec.seconds) as bar:
        bar.advance(done)
        while done < spec.seconds:
            if job.should_stop():
                job.save_data({"done_s": done})
                raise Interrupted()
            dt = min(0.05, spec.seconds - done)
            time.sleep(dt)
            done += dt
            bar.advance(dt)
    if spec.fail:
        raise RuntimeError("sleep job asked to fail")
    if spec.append_to:
        with open(spec.append_to, "a", encoding="utf-8") as f:
            f.write(job.job_id + "\n")
    return SleepResult(slept_s=spec.seconds)


SLEEP = register(JobKind("sleep", SleepJob, run_sleep, SleepResult, multi_worker=True, stoppable=True))
