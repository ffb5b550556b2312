"""`imts doctor`'s checks against real databases, folders and the real sandbox probe."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imts.core.settings import Settings
from imts.services.doctor import diagnose, log_sandbox_state
from imts.store.context import Context


def by_name(settings: Settings) -> dict[str, tuple[str, bool, str]]:
    return {c.name: (c.status, c.required, c.detail) for c in diagnose(settings).checks}


def test_a_working_installation_is_healthy(any_ws: Context) -> None:
    report = diagnose(any_ws.settings)
    got = {c.name: c for c in report.checks}
    assert report.healthy and list(got) == [
        "database",
        "artifacts",
        "model_cache",
        "sandbox",
        "browser",
        "ray",
    ]
    assert got["database"].status == "ok" and "schema at" in got["database"].detail
    assert "postgres:" not in got["database"].detail or "@" not in got["database"].detail
    assert got["artifacts"].status == "ok" and got["sandbox"].status == "ok"
    assert got["ray"].status in ("missing", "ok") and not got["ray"].required


def test_an_unreachable_database_is_a_failure_with_the_reason(tmp_path: Path) -> None:
    bad = Settings(workspace=tmp_path, database_url="postgresql+psycopg://u:hunter2@127.0.0.1:1/imts")
    report = diagnose(bad)
    status, required, detail = by_name(bad)["database"]
    assert not report.healthy and status == "fail" and required
    assert "127.0.0.1:1/imts unreachable" in detail and "hunter2" not in detail


def test_an_unwritable_artifacts_folder_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, _, detail = by_name(Settings(workspace=blocker))["artifacts"]
    assert status == "fail" and "not writable" in detail


def test_sandbox_without_confinement_fails_unless_opted_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refused = Settings(workspace=tmp_path, sandbox_bwrap=str(tmp_path / "no-bwrap"))
    assert by_name(refused)["sandbox"][0] == "fail" and not diagnose(refused).healthy
    opted = refused.model_copy(update={"sandbox_unconfined": True})
    assert by_name(opted)["sandbox"][0] == "warn" and diagnose(opted).healthy
    with caplog.at_level(logging.INFO, logger="imts.services.doctor"):
        assert log_sandbox_state(refused).mode == "unavailable"
        assert log_sandbox_state(opted).mode == "unconfined"
        assert log_sandbox_state(Settings(workspace=tmp_path)).mode == "bubblewrap"
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "INFO"]
    assert "will be refused" in caplog.records[0].getMessage()
