"""Aliases with history, protection, tags, archive and delete, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.registry.factory import versions

from imts.core.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from imts.registry import service
from imts.store.context import Context
from imts.store.models import AuditEntry, BaseModelRecord


def _pause() -> datetime:
    """An instant strictly between two changes (timestamps have microseconds; PostgreSQL too)."""
    time.sleep(0.01)
    at = datetime.now(UTC)
    time.sleep(0.01)
    return at


def test_aliases_move_with_history_and_answer_what_was_production_at_t(
    any_ws: Context, tmp_path: Path
) -> None:
    ctx = any_ws
    v1, v2, v3 = versions(ctx, tmp_path, 3)
    assert service.alias_seq(ctx) == 0
    before_any = _pause()
    service.set_alias(ctx, v1.id, "production")
    service.set_alias(ctx, "tuned:2", "staging")
    t1 = _pause()
    moved = service.set_alias(ctx, "tuned:2", "production")
    t2 = _pause()
    service.set_alias(ctx, "tuned:3", "production")
    assert moved.version == 2 and moved.set_seq == 3
    # The newest alias state, by reference and in the version views.
    assert service.get_model_version(ctx, "tuned@production").id == v3.id
    assert service.resolve_alias(ctx, "tuned", "staging").id == v2.id
    listed = {m.version: m.aliases for m in service.list_model_versions(ctx)}
    assert listed == {1: [], 2: ["staging"], 3: ["production"]}
    # What was production at each instant.
    at = {t: [(h.alias, h.version) for h in service.alias_history(ctx, "tuned", "production", t)]
          for t in (before_any, t1, t2)}  # fmt: skip
    assert at == {before_any: [], t1: [("production", 1)], t2: [("production", 2)]}
    spans = service.alias_history(ctx, "tuned", "production")
    assert [(h.version, h.unset_at is None) for h in spans] == [(1, False), (2, False), (3, True)]
    assert spans[0].unset_seq == spans[1].set_seq and all(h.set_by == "local" for h in spans)
    # The change sequence number grows with each move; the state is current as of it.
    state = service.alias_state(ctx)
    assert state.seq == service.alias_seq(ctx) == 4
    assert {(a.alias, a.version) for a in state.aliases} == {("production", 3), ("staging", 2)}
    service.remove_alias(ctx, "tuned", "staging")
    assert service.alias_seq(ctx) == 5
    with pytest.raises(NotFoundError, match="no model version 'tuned@staging'"):
        service.get_model_version(ctx, "tuned@staging")
    with pytest.raises(ConflictError, match="already points to tuned:3"):
        service.set_alias(ctx, v3.id, "production")
    with pytest.raises(InputError, match="field 'alias'"):
        service.set_alias(ctx, v3.id, "Prod uction")
    with pytest.raises(InputError, match="not latest"):
        service.set_alias(ctx, v3.id, "latest")
    with ctx.session() as s:
        actions = [e.action for e in s.query(AuditEntry).order_by(AuditEntry.seq)]
    assert actions.count("model.alias.set") == 4 and actions.count("model.alias.remove") == 1


def test_protected_aliases_move_only_for_the_protecting_role(any_ws: Context, tmp_path: Path) -> None:
    ctx = any_ws
    v1, v2 = versions(ctx, tmp_path, 2)
    developer, researcher, viewer = (
        replace(ctx, principal=r, role=r) for r in ("developer", "researcher", "viewer")
    )
    service.set_alias(developer, v1.id, "staging")  # unprotected: anyone who may deploy
    with pytest.raises(PermissionDeniedError, match="may not deploy model"):
        service.set_alias(viewer, v2.id, "staging")
    service.protect_alias(ctx, "tuned", "production")  # admin by default
    with pytest.raises(PermissionDeniedError, match="protected: only role 'admin'"):
        service.set_alias(researcher, v1.id, "production")
    with pytest.raises(PermissionDeniedError, match="protected"):
        service.unprotect_alias(developer, "tuned", "production")
    assert service.alias_seq(ctx) == 1  # refused moves change nothing
    service.set_alias(ctx, v1.id, "production")
    assert service.alias_state(ctx).aliases[0].protected
    with pytest.raises(PermissionDeniedError, match="a higher role"):
        service.protect_alias(developer, "tuned", "champion", "admin")
    service.protect_alias(developer, "tuned", "champion", "developer")
    service.set_alias(developer, v2.id, "champion")
    service.unprotect_alias(ctx, "tuned", "production")
    service.set_alias(researcher, v2.id, "production")
    assert [p.alias for p in service.list_protections(ctx)] == ["champion"]


def test_tags_archive_and_delete_refused_while_something_depends(any_ws: Context, tmp_path: Path) -> None:
    ctx = any_ws
    v1, v2 = versions(ctx, tmp_path, 2)
    tagged = service.tag_model_version(ctx, v1.id, ["reviewed", "zh", "reviewed"])
    assert tagged.tags == ["reviewed", "zh"]
    assert service.tag_model_version(ctx, v1.id, ["en"], ["zh"]).tags == ["reviewed", "en"]
    service.set_alias(ctx, v1.id, "production")
    with pytest.raises(ConflictError, match="alias 'production' points to it"):
        service.delete_model_version(ctx, v1.id)
    with pytest.raises(ConflictError, match="aliased"):
        service.archive_model_version(ctx, v1.id)
    service.archive_model_version(ctx, v2.id)
    with pytest.raises(ConflictError, match="archived"):
        service.set_alias(ctx, v2.id, "staging")
    assert [m.version for m in service.list_model_versions(ctx, include_archived=False)] == [1]
    # A base model registered from v2's weights is a lineage child: v2 stays.
    with ctx.session() as s:
        s.add(BaseModelRecord(id="bm_c" + v2.id[-6:], name="child-" + v2.id, path=v2.merged_path,
                              architecture="Llama", num_params=1, source="t", checksum="0" * 64))  # fmt: skip
    with pytest.raises(ConflictError, match=r"base model 'child-.*' was registered from its weights"):
        service.delete_model_version(ctx, v2.id)
    service.remove_alias(ctx, "tuned", "production")
    gone = service.delete_model_version(ctx, v1.id)
    assert gone.merged_path and not Path(gone.merged_path).exists()
    with pytest.raises(NotFoundError):
        service.get_model_version(ctx, v1.id)
    # The history still says what production was.
    assert [h.version_id for h in service.alias_history(ctx, "tuned", "production")] == [v1.id]
    viewer = replace(ctx, principal="viewer", role="viewer")
    with pytest.raises(PermissionDeniedError):
        service.delete_model_version(viewer, v2.id)
