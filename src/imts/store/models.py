"""Metadata tables (SQLAlchemy 2). Schema changes go through Alembic migrations in ``migrations/``.

The database is the source of truth for what exists; files under the artifact store hold the bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored in UTC and always read back time-zone aware.

    PostgreSQL keeps the zone (``timestamptz``); SQLite has no such type and hands back naive values,
    which the API's ``date-time`` format rejects, so the zone is attached here, once, for both. A naive
    value written is taken as UTC (the store never writes local times). The DDL is the plain
    ``DateTime(timezone=True)`` the migrations create.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    """An organisation sharing the installation: it owns projects, and its jobs share the pool fairly."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Project(Base):
    """A tenant's project: datasets, runs, jobs, evaluations and model versions belong to one."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_projects_tenant_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BaseModelRecord(Base):
    """A model that can be fine-tuned: pulled from a package or registered from a local folder."""

    __tablename__ = "base_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str] = mapped_column(String(200))
    num_params: Mapped[int] = mapped_column(Integer)
    context_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    license: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.number"
    )


class DatasetVersion(Base):
    """An immutable, content-addressed version: a list of Parquet shards plus what made it."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    num_rows: Mapped[int] = mapped_column(Integer)
    shards: Mapped[list[Any]] = mapped_column(default=list)
    schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    operation: Mapped[str] = mapped_column(String(60))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class VersionParent(Base):
    """Lineage edge: ``version_id`` was derived from ``parent_id``."""

    __tablename__ = "dataset_version_parents"

    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    parent_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)


class Run(Base):
    """One training or evaluation run, with its typed spec as JSON."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(20))  # train | eval
    status: Mapped[str] = mapped_column(String(20), default="created")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base_model_id: Mapped[str | None] = mapped_column(ForeignKey("base_models.id"), nullable=True)
    model_version_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    dataset_version_id: Mapped[str | None] = mapped_column(ForeignKey("dataset_versions.id"), nullable=True)
    split: Mapped[str | None] = mapped_column(String(40), nullable=True)
    output_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What reproducing the run needs besides its spec: code version, packages, hardware, seeds.
    environment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Metric(Base):
    """One scalar of a run at a step (MLflow-style long table)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(60))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RunEvent(Base):
    """Something that happened in a run worth telling a user (checkpoint saved, rollback, error)."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalItem(Base):
    """Per-item result of an evaluation run."""

    __tablename__ = "eval_items"
    __table_args__ = (UniqueConstraint("run_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100))
    lang: Mapped[str] = mapped_column(String(10))
    prompt: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    prediction: Mapped[str] = mapped_column(Text)
    extracted: Mapped[str | None] = mapped_column(Text, nullable=True)
    correct: Mapped[bool]
    score: Mapped[float] = mapped_column(Float)


class ModelVersion(Base):
    """A trained model: an adapter and/or merged weights, with its lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version", name="uq_model_versions_project_name"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id"))
    train_run_id: Mapped[str] = mapped_column(String(40), index=True)
    dataset_version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"))
    adapter_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    merged_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    stage: Mapped[str] = mapped_column(String(20), default="none")  # superseded by aliases (unused)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelAlias(Base):
    """One span of an alias on a version: set at ``set_at``, moved or removed at ``unset_at`` (None: it
    still points here). Rows are never deleted, so "what was ``production`` at T" has an answer."""

    __tablename__ = "model_aliases"
    __table_args__ = (Index("ix_model_aliases_lookup", "project_id", "model", "alias", "unset_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    model: Mapped[str] = mapped_column(String(200))  # the model name the alias belongs to
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[str] = mapped_column(String(40))  # kept after the version is deleted (history)
    version: Mapped[int] = mapped_column(Integer)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(200))
    set_seq: Mapped[int] = mapped_column(Integer)
    unset_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    unset_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    unset_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Deployment(Base):
    """A model served by ``imts serve``: the version an alias of a model points to (followed as the
    alias moves), or a base model (``alias`` None), under the id clients name (``name``)."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_deployments_project_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasProtection(Base):
    """A protected alias: only a role at least ``min_role`` (holding the deploy permission) moves it."""

    __tablename__ = "alias_protections"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    min_role: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AliasClock(Base):
    """A project's alias-change sequence number: +1 on every alias move; a server polls it."""

    __tablename__ = "alias_clock"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class DatasetShare(Base):
    """A dataset version shared read-only with another project (issue 3: sharing)."""

    __tablename__ = "dataset_shares"

    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- jobs (issue 5) ----------------------------------------------------------------------------------


class JobRecord(Base):
    """A job: a typed spec the scheduler places on the pool and a worker runs.

    Scheduler-owned columns (state, attempt, slots, ...) change only under ``version`` compare-and-set;
    worker-owned columns (report, heartbeat, pid) only for the worker's own ``attempt``.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_project_submitted", "project_id", "submitted_ts"),  # a project's, newest first
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    tenant: Mapped[str] = mapped_column(String(100), default="default")
    owner: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority_class: Mapped[str] = mapped_column(String(20), default="normal")
    priority: Mapped[int] = mapped_column(Integer, default=50)
    preemptible: Mapped[bool] = mapped_column(default=True)
    workers: Mapped[int] = mapped_column(Integer, default=1)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    executor: Mapped[str] = mapped_column(String(20), default="local")
    # scheduler-owned
    state: Mapped[str] = mapped_column(String(20), default="queued")
    version: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    stop_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    slots: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    action: Mapped[str | None] = mapped_column(String(20), nullable=True)  # pending user request
    submitted_ts: Mapped[float] = mapped_column(Float)
    started_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    # worker-owned
    report: Mapped[str | None] = mapped_column(String(20), nullable=True)  # running|succeeded|failed|stopped
    report_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker_host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what a resumed attempt needs (run id)


class JobEvent(Base):
    """One line of a job's history (submitted, started, preempted, retried ...)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    ts: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)


class SchedulerLease(Base):
    """Leader lease: the one scheduler allowed to act until ``expires_ts``."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_ts: Mapped[float] = mapped_column(Float)


class GenerationCache(Base):
    """A generated answer, keyed by (model identity, prompt content, generation settings): re-evaluating
    the same model on the same items with the same settings costs nothing."""

    __tablename__ = "generation_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_key: Mapped[str] = mapped_column(String(120), index=True)
    text: Mapped[str] = mapped_column(Text)
    new_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalItemScore(Base):
    """One metric value or judge verdict of one evaluated item (besides ``eval_items.correct``)."""

    __tablename__ = "eval_item_scores"
    __table_args__ = (UniqueConstraint("run_id", "item_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(80))  # "rouge_l", "judge:math", ...
    value: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(40), nullable=True)  # a judge's verdict
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # a judge's rationale


class User(Base):
    """A person who signs in to the server (argon2 password hash only; no password is ever stored)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lang: Mapped[str] = mapped_column(String(10), default="en", server_default="en")  # the console's


class Membership(Base):
    """A user's role in a tenant; a user sees only the tenants it is a member of."""

    __tablename__ = "memberships"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """A program's credential: the SHA-256 of its secret, a scope, a role ceiling and an expiry.

    Scope: ``project_id`` set — that project only; ``tenant_id`` only — that tenant; neither — all of
    the user's tenants.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    role_ceiling: Mapped[str | None] = mapped_column(String(20), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginSession(Base):
    """A browser's signed-in session: the SHA-256 of the cookie's token and of its CSRF token."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """One change, append-only and hash-chained: ``hash`` covers ``prev_hash`` and the entry's canonical
    JSON (``store/audit.py``). Platform-level changes (users, tenants) have no tenant."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed exactly as stored
    actor: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's newest entry (one row): writers lock it, so concurrent changes append in turn, and
    ``verify`` compares it with the log's tail to detect a deleted last entry."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Webhook(Base):
    """A tenant's webhook: events POSTed to ``url``, signed with ``secret`` (HMAC-SHA256).

    The secret must be kept in clear to sign with; it is shown once when created and never listed,
    logged or audited."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event to deliver to one webhook (the outbox): retried with backoff until delivered or out
    of attempts; ``event_key`` makes an event enqueue once per webhook, whoever notices it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_ts"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(60))
    event_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ts: Mapped[float] = mapped_column(Float)
    claimed_until: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookAttempt(Base):
    """One try at a delivery: the receiver's status code or the error, and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)


class WebhookCursor(Base):
    """How far the webhook worker has looked in one event source (finished jobs, watchdog events)."""

    __tablename__ = "webhook_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class ProjectSecret(Base):
    """A project's own random key for keyed operations that must not link across projects (the PII
    surrogates: HMAC(secret, value)). Made on first use; never listed, logged or audited."""

    __tablename__ = "project_secrets"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewItem(Base):
    """A generated or rewritten row held back by a data fix for a person to accept or reject: it enters
    a dataset version only once accepted (``imts data review``)."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_queue", "project_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    fix_id: Mapped[str] = mapped_column(String(40), index=True)  # the version the fix made
    row_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # generated | rewritten
    row: Mapped[dict[str, Any]] = mapped_column(JSON)
    original: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # before a rewrite
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | accepted | rejected
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetAnalysis(Base):
    """One analysis of a dataset version against an intent (``imts data analyze``): the summary here,
    the full result and its reports under the artifact store (``report_key``)."""

    __tablename__ = "dataset_analyses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    intent: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(10))
    task: Mapped[str | None] = mapped_column(String(40), nullable=True)
    verdict: Mapped[str] = mapped_column(String(20))  # fits | partial | refused
    fit_score: Mapped[float] = mapped_column(Float)
    health_score: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: refused, not forced
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    findings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # kind -> rows, for lists and the loop
    report_key: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Loop(Base):
    """One closed loop (``imts loop``): its spec, where it stands and why it ended. Its steps' jobs are
    in ``loop_steps``; everything it spent is read back from those jobs, never counted here."""

    __tablename__ = "loops"
    __table_args__ = (Index("ix_loops_status", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # the loop acts with its starter's role, never more
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="running")
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    phase: Mapped[str] = mapped_column(String(20), default="analyze")
    version: Mapped[int] = mapped_column(Integer, default=0)  # compare-and-set of every move
    request: Mapped[str | None] = mapped_column(String(20), nullable=True)  # stop, asked by a user
    stop_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    best_run: Mapped[str | None] = mapped_column(String(40), nullable=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # versions, runs, outcomes so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoopStep(Base):
    """One step of a loop's iteration and the job that runs it: written before the job is submitted,
    with the job's id, so a driver killed in between submits that same id and no step runs twice."""

    __tablename__ = "loop_steps"

    loop_id: Mapped[str] = mapped_column(ForeignKey("loops.id", ondelete="CASCADE"), primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    phase: Mapped[str] = mapped_column(String(20), primary_key=True)
    try_no: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)  # a failed step tried again
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # None: nothing to run
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    why: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the decision behind the step
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
