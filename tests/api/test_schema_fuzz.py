"""schemathesis against the served OpenAPI schema, authenticated as a platform administrator: every
operation, a bounded number of generated requests each — no 5xx, and every response conforms to the
schema (status code, content type, body).

It runs on both databases: SQLite (which has no time-zone type; the store's ``UTCDateTime`` gives
timestamps back aware, as the schema's ``date-time`` format requires) and PostgreSQL."""

from __future__ import annotations

import atexit
import os
import tempfile
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from tests.conftest import PG_ADMIN_URL, make_ws

from imts.api.app import create_app
from imts.services import identity
from imts.store.context import platform_context

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


def _database() -> str | None:
    """A fresh PostgreSQL database for this module (dropped at exit); None without a server."""
    name = f"imts_fuzz_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'create database "{name}"'))
    except OperationalError:
        if os.environ.get("CI"):
            raise
        return None

    @atexit.register
    def drop() -> None:
        from imts.store.db import session_factory

        session_factory(url).kw["bind"].dispose()
        with admin.connect() as c:
            c.execute(text(f'drop database if exists "{name}" with (force)'))

    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    return url


def _served(database_url: str | None) -> tuple[schemathesis.schemas.BaseSchema, str]:
    """The served schema of a fresh workspace on ``database_url`` (SQLite when None), and an
    administrator's key."""
    ws = make_ws(Path(tempfile.mkdtemp(prefix="imts-fuzz-")), database_url, api_rate_limit="100000/minute",
                 api_rate_limit_anonymous="100000/minute", api_auth_failure_limit="100000/minute",
                 api_login_failure_limit="100000/minute")  # fmt: skip
    admin = platform_context(ws.ws, "root")
    identity.create_user(admin, "root", "correct horse battery staple", platform_admin=True)
    key = identity.create_key(admin, "fuzz", username="root").secret
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(ws.settings)), key


sqlite_schema, SQLITE_KEY = _served(None)
PG_URL = _database()
pg_schema, PG_KEY = _served(PG_URL) if PG_URL else (sqlite_schema, "")


@sqlite_schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_sqlite_no_server_error_and_no_schema_violation(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {SQLITE_KEY}"}, checks=CHECKS)


@pg_schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_postgresql_no_server_error_and_no_schema_violation(case: schemathesis.Case) -> None:
    if not PG_URL:
        pytest.skip("no PostgreSQL server")
    case.call_and_validate(headers={"Authorization": f"Bearer {PG_KEY}"}, checks=CHECKS)
