"""schemathesis against the served OpenAPI schema, authenticated as a platform administrator: every
operation, a bounded number of generated requests each — no 5xx, and every response conforms to the
schema (status code, content type, body).

It runs on PostgreSQL: SQLite gives timestamps back without a time zone, which the schema's
``date-time`` format rejects (a known gap of the SQLite store, see docs/server.md)."""

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


def _database() -> str:
    """A fresh PostgreSQL database for this module (dropped at exit); skips without a server."""
    name = f"imts_fuzz_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'create database "{name}"'))
    except OperationalError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no PostgreSQL server", allow_module_level=True)

    @atexit.register
    def drop() -> None:
        from imts.store.db import session_factory

        session_factory(url).kw["bind"].dispose()
        with admin.connect() as c:
            c.execute(text(f'drop database if exists "{name}" with (force)'))

    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    return url


_ws = make_ws(Path(tempfile.mkdtemp(prefix="imts-fuzz-")), _database(), api_rate_limit="100000/minute",
              api_rate_limit_anonymous="100000/minute")  # fmt: skip
_admin = platform_context(_ws.ws, "root")
identity.create_user(_admin, "root", "correct horse battery staple", platform_admin=True)
KEY = identity.create_key(_admin, "fuzz", username="root").secret
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_ws.settings))


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_error_and_no_schema_violation(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)
