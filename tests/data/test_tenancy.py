"""Tenancy per call: another tenant's context reaches none of this tenant's datasets or model versions.

Everything goes through the services (``imts.data.service``, ``imts.registry.service``), the way the
CLI and the API reach the data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write_jsonl

from imts.core.errors import NotFoundError
from imts.data import service as data
from imts.registry import models
from imts.registry import service as registry
from imts.store.context import Context, open_context
from imts.store.models import BaseModelRecord


def _rows(n: int, tag: str = "") -> list[dict[str, str]]:
    return [
        {"id": f"r{i}", "prompt": f"What is {i} plus {i}?{tag}", "response": str(2 * i), "category": "add"}
        for i in range(n)
    ]


def _refused(call: Callable[[], Any]) -> None:
    with pytest.raises(NotFoundError):
        call()


def test_other_tenant_reaches_no_dataset(ws: Context, tmp_path: Path) -> None:
    v1 = data.import_file(ws, str(write_jsonl(tmp_path / "a.jsonl", _rows(20))), "d")
    v2 = data.import_file(ws, str(write_jsonl(tmp_path / "b.jsonl", _rows(21))), "d")
    # Shared with this tenant's project "p2": the other tenant's project of the same name gains nothing.
    data.share(ws, "d@1", "p2")
    t2 = open_context(ws.ws, "t2", "p2")
    assert t2.tenant_id != ws.tenant_id and t2.project_id != ws.project_id

    assert data.list_versions(t2) == [] and data.list_versions(t2, "d") == []
    refs = [
        "d",
        "d@1",
        "d@2",
        v1.id,
        v2.id,
        f"{v1.id}:train",
        f"{ws.project}/d",
        f"{ws.project}/d@1",
        f"{ws.project}/d@2",
    ]
    for ref in refs:
        _refused(lambda ref=ref: data.resolve(t2, ref))
        _refused(lambda ref=ref: data.show(t2, ref))
        _refused(lambda ref=ref: data.preview(t2, ref))
        _refused(lambda ref=ref: data.stats(t2, ref))
        _refused(lambda ref=ref: data.split_version(t2, ref))
        _refused(lambda ref=ref: data.dedup(t2, ref, into="mine"))
        _refused(lambda ref=ref: data.export_version(t2, ref, tmp_path / "out.jsonl"))
        _refused(lambda ref=ref: data.share(t2, ref, "p3"))
    _refused(lambda: data.diff(t2, "d@1", "d@2"))
    _refused(lambda: data.diff(t2, v1.id, v2.id))
    _refused(lambda: data.diff(t2, f"{ws.project}/d@1", f"{ws.project}/d@2"))
    _refused(lambda: data.rollback(t2, "d", "1"))
    _refused(lambda: data.rollback(t2, "d", v1.id))
    _refused(lambda: data.lineage(t2, "d"))
    assert not (tmp_path / "out.jsonl").exists()

    # The other tenant's own dataset of the same name is its own, and this tenant's stays whole.
    mine = data.import_file(t2, str(write_jsonl(tmp_path / "c.jsonl", _rows(5, " (t2)"))), "d")
    assert mine.ref == "d@1" and mine.id != v1.id
    assert [v.id for v in data.list_versions(t2)] == [mine.id]
    assert data.resolve(t2, "d").version.id == mine.id
    assert [v.id for v in data.list_versions(ws, "d")] == [v1.id, v2.id]
    assert data.diff(ws, "d@1", "d@2").rows.added == 1
    assert data.lineage(ws, "d").versions[0].id == v1.id


def test_other_tenant_reaches_no_model_version(ws: Context, tmp_path: Path) -> None:
    v = data.import_file(ws, str(write_jsonl(tmp_path / "a.jsonl", _rows(4))), "d")
    with ws.session() as s:
        s.add(
            BaseModelRecord(
                id="bm_t",
                name="tiny",
                path=str(tmp_path),
                architecture="Llama",
                num_params=1,
                source="test",
                checksum="0" * 64,
            )
        )
    mv = models.create_version(
        ws, "m", "bm_t", "run_t", v.id, None, tmp_path / "merged", {"method": "lora"}, {"final_loss": 1.0}
    )
    assert registry.resolve_model(ws, "m:1").model_version_id == mv.id
    assert registry.get_model_version(ws, "run_t").id == mv.id
    assert [m.id for m in registry.list_model_versions(ws)] == [mv.id]

    t2 = open_context(ws.ws, "t2", "p2")
    assert registry.list_model_versions(t2) == []
    for ref in ("m", "m:1", mv.id, "run_t"):
        _refused(lambda ref=ref: registry.get_model_version(t2, ref))
        _refused(lambda ref=ref: registry.resolve_model(t2, ref))
    # Same name in the other tenant: its own version 1, not a continuation of this tenant's numbering.
    own = data.import_file(t2, str(write_jsonl(tmp_path / "b.jsonl", _rows(4))), "d")
    other = models.create_version(t2, "m", "bm_t", "run_u", own.id, None, tmp_path / "m2", {}, {})
    assert other.version == 1 and registry.resolve_model(t2, "m:1").model_version_id == other.id
    assert registry.resolve_model(ws, "m").model_version_id == mv.id
