"""All of IMTS's settings in one typed object.

Every field can be set from the environment with the ``IMTS_`` prefix (``IMTS_DATABASE_URL``,
``IMTS_WORKSPACE`` ...) or from a ``.env`` file in the working directory. Nothing else in the code reads
environment variables for configuration.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path.home() / ".cache" / "imts"


class Settings(BaseSettings):
    """IMTS settings (environment prefix ``IMTS_``)."""

    model_config = SettingsConfigDict(env_prefix="IMTS_", env_file=".env", extra="ignore")

    workspace: Path = Field(
        default=Path("workspace"),
        description="Folder holding the embedded database and all artifacts (datasets, runs, reports).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default: SQLite file imts.db in the workspace. "
        "PostgreSQL: postgresql+psycopg://user@host/dbname",
    )
    model_cache: Path = Field(
        default_factory=lambda: _default_cache() / "models",
        description="Where base models converted to safetensors are kept, shared by all workspaces.",
    )
    tenant: str = Field(default="default", description="Tenant the CLI acts in (created on first use).")
    project: str = Field(
        default="default",
        description="Project of that tenant the CLI acts in: its datasets, runs, jobs, evaluations and model "
        "versions (created on first use).",
    )
    threads: int | None = Field(
        default=None, description="CPU threads for torch; default: all cores this process may use."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store for s3:// dataset sources (MinIO, moto, ...); "
        "credentials come from the usual AWS_* variables or ~/.aws.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="When set, training runs also log params and metrics to this MLflow tracking URI "
        "(http://host:5000, sqlite:///mlflow.db, file:///path). TensorBoard event files are always "
        "written under each run's folder.",
    )
    mlflow_experiment: str = Field(default="imts", description="MLflow experiment the runs are logged to.")
    pool_file: Path | None = Field(
        default=None,
        description="YAML file describing the resource pool (nodes, GPUs, MIG slices, tenants and quotas); "
        "default: this machine's cores and memory. See docs/jobs.md.",
    )
    heartbeat_s: float = Field(default=2.0, gt=0, description="How often job workers report they are alive.")
    heartbeat_timeout_s: float = Field(
        default=30.0, gt=0, description="A worker silent this long is presumed dead; its job is retried."
    )
    start_timeout_s: float = Field(
        default=60.0, gt=0, description="A started job whose worker has not reported by then is requeued."
    )
    scheduler_interval_s: float = Field(default=0.5, gt=0, description="Seconds between scheduling passes.")
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of local job workers: the API server and the console stay responsive "
        "while workers use the CPU they leave free (0: the server's priority).",
    )
    worker_launcher: bool = Field(
        default=True,
        description="`imts server` and `imts scheduler` fork local job workers from one launcher process "
        "that imported them once, instead of starting each as a fresh interpreter (~0.8 s of CPU saved "
        "per worker).",
    )
    offload_processes: int = Field(
        default_factory=lambda: max(1, min(4, (os.cpu_count() or 2) // 2)),
        ge=0,
        le=64,
        description="Helper processes of `imts server` that run requests' heavy work (an upload's import), "
        "so the server's own process keeps answering (0: in the server's process).",
    )
    offload_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of the server's helpers: reads go first on a busy machine.",
    )
    preempt_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="A job resumed after preemption (or any requeue) runs at least this long before it "
        "may be preempted again (no thrashing).",
    )
    storage_refresh_s: float = Field(
        default=60.0,
        ge=0,
        description="How often the scheduler re-measures what each project stores (storage quotas walk "
        "the artifact folders).",
    )
    hpo_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of Optuna's study storage for `imts hpo` (a study resumes from it "
        "after a crash); default: SQLite file hpo.db in the workspace, next to imts.db.",
    )
    chat_api_key: SecretStr | None = Field(
        default=None,
        description="API key sent to an OpenAI-compatible endpoint used as a chat backend (judges, red "
        "team); never logged or printed.",
    )
    upload_max_bytes: int = Field(
        default=50 << 30,
        gt=0,
        description="Largest file the API accepts as a chunked upload (bytes; default 50 GiB).",
    )
    upload_max_chunk_bytes: int = Field(
        default=64 << 20,
        gt=0,
        description="Largest chunk of a chunked upload (bytes; default 64 MiB); the smallest is 64 KiB.",
    )
    upload_expiry_h: float = Field(
        default=24.0,
        gt=0,
        description="An upload not completed this many hours after it was started is deleted.",
    )
    serve_api_key: SecretStr | None = Field(
        default=None,
        description="The one API key `imts serve --local` requires (none: open, loopback only); without "
        "--local, clients present platform API keys (`imts keys create`).",
    )
    serve_batch_window_ms: float = Field(
        default=5.0, ge=0, description="How long `imts serve` waits for more requests to batch together."
    )
    serve_max_batch: int = Field(default=32, ge=1, description="Most generations in one `imts serve` batch.")
    serve_requests_per_minute: int = Field(
        default=0, ge=0, description="Requests one API key may make to `imts serve` per minute (0: no limit)."
    )
    serve_tokens_per_minute: int = Field(
        default=0,
        ge=0,
        description="Prompt and completion tokens one API key may use on `imts serve` per minute "
        "(0: no limit).",
    )

    sandbox_unconfined: bool = Field(
        default=False,
        description="Run untrusted code (math judge, verifiers, red team) even where the sandbox cannot be "
        "confined (no bubblewrap, no user namespaces): only the audit hook and resource limits then "
        "contain it. Off: such code is refused. An admin's explicit choice; `imts doctor` reports it.",
    )
    sandbox_bwrap: str = Field(
        default="bwrap", description="The bubblewrap executable (name on PATH or path) that confines it."
    )
    # --- the API server's limits, metrics and webhooks (docs/server.md) ---
    api_rate_limit: str = Field(
        default="1200/minute",
        description="Requests one API key or browser session may make (per server process), in the "
        "`limits` syntax ('100/second', '1200/minute;20000/hour'); over it: 429 with Retry-After.",
    )
    api_rate_limit_anonymous: str = Field(
        default="120/minute",
        description="Requests one client address may make without credentials (login, health).",
    )
    api_auth_failure_limit: str = Field(
        default="20/minute;200/hour",
        description="Failed authentications (401: an unknown key, an expired session, a wrong password) "
        "one client address may make; over it every request from the address gets 429 until the window "
        "passes, so sending a fresh random key each time buys no fresh budget.",
    )
    api_login_failure_limit: str = Field(
        default="10/minute;50/hour",
        description="Failed sign-ins (POST /auth/login) for one user name, from any address; over it the "
        "name's sign-ins get 429, against password guessing spread over many addresses.",
    )
    api_rate_limit_storage: str = Field(
        default="memory://",
        description="Where the rate-limit counters live (`limits` storage URI; redis://host:6379 shares "
        "them between server processes).",
    )
    api_max_body_mb: float = Field(
        default=16.0,
        gt=0,
        description="Largest request body the API accepts (413 above it); upload chunks have their "
        "own limit.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Prometheus may scrape /metrics with; a platform administrator's key "
        "(or session) always may. Never logged.",
    )
    server: str | None = Field(
        default=None,
        description="URL of an IMTS server (http://host:8000): the CLI's commands then act there with "
        "IMTS_API_KEY instead of on the local database.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key the CLI sends to IMTS_SERVER (imts_...); never printed."
    )
    webhook_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the server's webhook worker looks for events and due retries.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Deliveries of one webhook event tried at most this often."
    )
    webhook_backoff_s: float = Field(
        default=10.0,
        gt=0,
        description="Wait before a webhook delivery's first retry; doubled after each failure "
        "(capped at 1 h).",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one webhook delivery.")

    @field_validator("workspace", "model_cache")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def db_url(self) -> str:
        """The metadata database URL actually used."""
        return self.database_url or f"sqlite:///{self.workspace / 'imts.db'}"

    @property
    def hpo_db_url(self) -> str:
        """Optuna's study storage (its own tables and Alembic history: never the metadata database)."""
        return self.hpo_database_url or f"sqlite:///{self.workspace / 'hpo.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.workspace / "artifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
