"""What keeps the API server's reads from waiting: an upload's import runs in a niced helper process
with the caller's identity, same result and same located errors; a request never writes for its key's
last use (a background thread does, to the minute)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from imts.core.errors import InputError
from imts.core.settings import Settings
from imts.data import service as data
from imts.services import audit, identity, offload
from imts.services.startup import start
from imts.store.context import open_context, platform_context
from imts.store.models import ApiKey


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of stat: nice


def _descendants(pid: int) -> list[int]:
    found, i = [pid], 0
    while i < len(found):
        kids = Path(f"/proc/{found[i]}/task/{found[i]}/children").read_text().split()
        found += [int(k) for k in kids]
        i += 1
    return found[1:]


def test_an_import_offloaded_to_a_niced_helper_is_the_same_import(tmp_path: Path) -> None:
    ws = start(Settings(workspace=tmp_path / "ws"))
    ctx = open_context(ws, "acme", "nlp", principal="alice", role="researcher", client="10.0.0.7")
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "2 + 2?", "response": "4"}\n{"prompt": "3 + 3?", "response": "6"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "2 + 2?", "response": "4"}\n{"prompt": "3 + 3?"}\n')
    offload.start(1, 7)
    try:
        niced = min(19, os.nice(0) + 7)  # relative to this process's, as `nice -n 7` would be
        helpers = [p for p in _descendants(os.getpid()) if _niceness(p) == niced]
        assert len(helpers) == 1, "one helper, niced"
        version = offload.call(ctx, data.import_file, good, "calc")
        with pytest.raises(InputError) as err:
            offload.call(ctx, data.import_file, bad, "calc")
    finally:
        offload.stop()
    assert (version.ref, version.num_rows) == ("calc@1", 2)
    assert data.resolve(ctx, "calc@1").version.id == version.id  # committed in the same database
    # The error crossed the process boundary with its location: what the API's error body is built from.
    assert (err.value.file, err.value.line, err.value.field) == (str(bad), 2, "response")
    assert [v.ref for v in data.list_versions(ctx, "calc")] == ["calc@1"]  # the bad file recorded nothing
    # The helper acted as the caller: the audit entry names alice, her tenant and her address.
    entry = audit.query(platform_context(ws, "root"), action="dataset.*")[0]
    assert (entry.actor, entry.tenant, entry.client) == ("alice", "acme", "10.0.0.7")
    # Without helpers the same call runs in place.
    assert offload.call(ctx, data.import_file, good, "calc2").num_rows == 2


def test_a_request_never_writes_its_keys_last_use(tmp_path: Path) -> None:
    ws = start(Settings(workspace=tmp_path / "ws"))
    admin = platform_context(ws, "root")
    identity.create_user(admin, "bob", "a-long-enough-password")
    secret = identity.create_key(admin, "ci", username="bob").secret

    def last_used() -> object:
        with ws.session() as s:
            return s.scalar(select(ApiKey.last_used_at))

    assert identity.authenticate_key(ws, secret).username == "bob"
    assert last_used() is None  # noted, not written by the request
    identity.flush_key_uses(ws)
    first = last_used()
    assert first is not None
    identity.authenticate_key(ws, secret)  # within the minute: nothing more to write
    identity.flush_key_uses(ws)
    assert last_used() == first
