"""The health of the installation (`imts doctor`): database, artifacts, model cache, sandbox, browser, Ray.

These checks take the settings, not a ``Context``: a context needs a reachable, migrated database, which
is one of the things checked here. Nothing is created or migrated by looking.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, computed_field
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from imts.agents.sandbox import Confinement, confinement
from imts.core.errors import InputError
from imts.core.settings import Settings, get_settings
from imts.jobs.pool import load_pool
from imts.registry.base_models import CATALOGUE
from imts.store.db import head_revisions, make_engine

Status = Literal["ok", "warn", "fail", "missing"]
log = logging.getLogger(__name__)


class Check(BaseModel):
    """One part of the installation: its status and why."""

    name: str
    status: Status
    required: bool
    detail: str


class DoctorReport(BaseModel):
    """Every check; ``healthy`` is false when a required part is broken."""

    checks: list[Check]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def healthy(self) -> bool:
        return not any(c.required and c.status == "fail" for c in self.checks)


def diagnose(settings: Settings | None = None) -> DoctorReport:
    """Check every part of the installation (reads only; creates and migrates nothing)."""
    settings = settings or get_settings()
    return DoctorReport(
        checks=[
            _database(settings),
            _artifacts(settings),
            _model_cache(settings),
            sandbox_check(settings),
            _browser(),
            _ray(settings),
        ]
    )


def _database(settings: Settings) -> Check:
    url = settings.db_url
    shown = url.split("@")[-1] if "@" in url else url  # never the password
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return Check(
            name="database", status="ok", required=True, detail=f"{shown}: created and migrated on first use"
        )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                stamped = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
            except DBAPIError:
                stamped = set()
    except SQLAlchemyError as exc:
        reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()[0]
        return Check(name="database", status="fail", required=True, detail=f"{shown} unreachable: {reason}")
    finally:
        engine.dispose()
    heads = head_revisions()
    if stamped == heads:
        return Check(name="database", status="ok", required=True, detail=f"{shown}: schema at {min(heads)}")
    if not stamped:
        return Check(name="database", status="warn", required=True, detail=f"{shown}: not migrated yet")
    return Check(
        name="database",
        status="warn",
        required=True,
        detail=f"{shown}: schema at {', '.join(sorted(stamped))}, code at {', '.join(sorted(heads))} "
        "(migrated on next use)",
    )


def _artifacts(settings: Settings) -> Check:
    folder = settings.artifacts_dir
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # a new workspace: the folder is made on first use, where it can be
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".imts-doctor-"):
            pass
    except OSError as exc:
        return Check(name="artifacts", status="fail", required=True, detail=f"{folder}: not writable ({exc})")
    made = "" if folder.exists() else " (made on first use)"
    return Check(name="artifacts", status="ok", required=True, detail=f"{folder}: writable{made}")


def _model_cache(settings: Settings) -> Check:
    present = sorted(n for n in CATALOGUE if (settings.model_cache / n / "config.json").is_file())
    if present:
        return Check(
            name="model_cache",
            status="ok",
            required=False,
            detail=f"{settings.model_cache}: {', '.join(present)}",
        )
    first = min(CATALOGUE)
    return Check(
        name="model_cache",
        status="warn",
        required=False,
        detail=f"{settings.model_cache}: no base model yet (imts models pull {first}; make demo does it)",
    )


def sandbox_check(settings: Settings | None = None) -> Check:
    """How untrusted code (math judge, verifiers, red team) runs here."""
    conf = confinement(settings or get_settings())
    seccomp = "seccomp filter on" if conf.seccomp else "no seccomp (libseccomp missing): hook and limits"
    if conf.mode == "bubblewrap":
        return Check(
            name="sandbox", status="ok", required=True, detail=f"confined by {conf.detail}; {seccomp}"
        )
    if conf.mode == "unconfined":
        return Check(name="sandbox", status="warn", required=True, detail=f"NOT confined: {conf.detail}")
    return Check(
        name="sandbox",
        status="fail",
        required=True,
        detail=f"untrusted code is refused: {conf.detail} (install bubblewrap, or opt in with "
        "IMTS_SANDBOX_UNCONFINED=1)",
    )


def log_sandbox_state(settings: Settings | None = None) -> Confinement:
    """For a server's start-up: say in the log how untrusted code will run (or that it is refused)."""
    conf = confinement(settings or get_settings())
    if conf.mode == "bubblewrap":
        log.info("sandbox: untrusted code runs confined by %s (seccomp %s)", conf.detail, conf.seccomp)
    elif conf.mode == "unconfined":
        log.warning("sandbox: untrusted code runs WITHOUT confinement (admin opt-in): %s", conf.detail)
    else:
        log.error("sandbox: untrusted code will be refused, no confinement: %s", conf.detail)
    return conf


def _browser() -> Check:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return Check(name="browser", status="ok", required=False, detail=found)
    return Check(
        name="browser",
        status="warn",
        required=False,
        detail="chromium not found (browser tests; Debian package chromium, `make system`)",
    )


def _ray(settings: Settings) -> Check:
    """Ray's version; and, when the pool file names the Ray executor, whether its cluster answers."""
    if importlib.util.find_spec("ray") is None:
        return Check(
            name="ray",
            status="missing",
            required=False,
            detail="not installed (only cluster execution needs it; local workers do not)",
        )
    version = f"ray {importlib.metadata.version('ray')}"
    try:
        pool = load_pool(settings.pool_file)
    except InputError as exc:
        return Check(name="ray", status="warn", required=False, detail=f"{version}; pool file: {exc}")
    if pool.executor != "ray":
        return Check(name="ray", status="ok", required=False, detail=f"{version} (executor: local)")
    from imts.jobs.ray_executor import RayExecutor, RayUnavailable

    ex = RayExecutor(settings, pool.ray_address or "")
    try:
        info = ex.cluster()
    except RayUnavailable as exc:  # jobs wait queued until the head is back: the pool is unusable
        return Check(name="ray", status="fail", required=True, detail=f"{version}; {exc}")
    finally:
        ex.close()
    res = info["resources"]
    return Check(
        name="ray",
        status="ok",
        required=True,
        detail=f"{version}; cluster at {pool.ray_address} (ray {info['version']}): {info['nodes']} node(s), "
        f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU",
    )
