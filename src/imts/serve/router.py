"""Who may use which served model, and which weights a served id means now.

``Caller``: an API key's reach (the projects of its tenants it may read, capped by its scope), or the
local single user. ``Router``: per project, the deployments and the versions their aliases point to,
re-read only when the project's alias-change sequence number grew (one row per request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imts.core.errors import AuthenticationError, NotFoundError
from imts.core.permissions import Permission
from imts.registry import service as registry
from imts.services import identity, tenancy
from imts.store.context import Context, open_context, tenant_context
from imts.store.workspace import Workspace


@dataclass(frozen=True)
class Caller:
    """An authenticated client: ``key`` names it in usage and metrics (a key id, or ``local``)."""

    key: str
    projects: tuple[Context, ...]


@dataclass(frozen=True)
class Target:
    """The weights a served id means now: a base folder, and an adapter over it (None: the base)."""

    id: str
    base: Path
    adapter: str | None
    adapter_path: Path | None
    version: str


class KeyAccess:
    """Clients present an API key of the platform (``imts keys create``); a key reaches the projects
    of its user's tenants within its scope. Reaches are cached for ``ttl_s`` seconds."""

    def __init__(self, ws: Workspace, ttl_s: float = 10.0) -> None:
        self.ws, self.ttl_s = ws, ttl_s
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def caller(self, secret: str | None) -> Caller:
        if not secret:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        who = identity.authenticate_key(self.ws, secret)  # raises for a revoked or expired key at once
        with self._lock:
            hit = self._cache.get(secret)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        projects: list[Context] = []
        for m in identity.memberships(self.ws, who.user_id):
            found = identity.role_in(self.ws, who, m.tenant)
            if found is None or not who.reaches_tenant(found[0]):
                continue
            tctx = tenant_context(self.ws, m.tenant, who.username, found[1])
            for p in tenancy.list_projects(tctx):
                ctx = open_context(self.ws, m.tenant, p.name, who.username, found[1], create=False)
                if who.reaches_project(ctx.project_id) and Permission.METRICS_VIEW in _perms(ctx):
                    projects.append(ctx)
        caller = Caller(str(who.key_id), tuple(projects))
        with self._lock:
            self._cache[secret] = (time.monotonic(), caller)
        return caller


class LocalAccess:
    """One local user acting in one project (``imts serve --local``): no key, or the one in ``secret``."""

    def __init__(self, ctx: Context, secret: str | None = None) -> None:
        self.ctx, self.secret = ctx, secret

    def caller(self, secret: str | None) -> Caller:
        if self.secret is not None and secret != self.secret:
            raise AuthenticationError("invalid API key")
        return Caller("local", (self.ctx,))


def _perms(ctx: Context) -> set[Permission]:
    from imts.core.permissions import MATRIX

    return set(MATRIX[ctx.role])


class Router:
    """Served ids to weights, per project, following alias moves; ``pinned`` ids serve fixed folders."""

    def __init__(
        self,
        pinned: dict[str, tuple[Path, Path | None]] | None = None,
        on_dropped: Callable[[Target], None] | None = None,
    ) -> None:
        self.on_dropped = on_dropped
        self.pinned = {
            k: Target(k, Path(base), k if adapter else None, Path(adapter) if adapter else None, k)
            for k, (base, adapter) in (pinned or {}).items()
        }
        self._projects: dict[str, tuple[int, dict[str, Target | str]]] = {}
        self._lock = threading.Lock()

    def targets(self, ctx: Context) -> dict[str, Target | str]:
        """The project's served ids: a ``Target``, or why the id serves nothing now (its alias points
        nowhere)."""
        seq = registry.alias_seq(ctx)
        with self._lock:
            known = self._projects.get(ctx.project_id)
        if known is not None and known[0] == seq:
            return known[1]
        found: dict[str, Target | str] = {}
        for d in registry.list_deployments(ctx):
            try:
                found[d.name] = self._resolve(ctx, d.name, d.model, d.alias)
            except NotFoundError as exc:
                found[d.name] = str(exc)
        with self._lock:
            self._projects[ctx.project_id] = (seq, found)
        if known is not None and self.on_dropped is not None:
            now = {t.adapter for t in found.values() if isinstance(t, Target)}
            for t in known[1].values():
                if isinstance(t, Target) and t.adapter is not None and t.adapter not in now:
                    self.on_dropped(t)  # an alias moved off it, or its deployment went
        return found

    def visible(self, caller: Caller) -> dict[str, Target | str]:
        """Every id the caller may use: ``name``, or ``tenant/project/name`` where two projects it
        reaches deploy the same name (the qualified form is always accepted)."""
        per = [(ctx, self.targets(ctx)) for ctx in caller.projects]
        counts: dict[str, int] = {}
        for _, ts in per:
            for name in ts:
                counts[name] = counts.get(name, 0) + 1
        out: dict[str, Target | str] = dict(self.pinned)
        for ctx, ts in per:
            for name, t in ts.items():
                out[f"{ctx.tenant}/{ctx.project}/{name}"] = t
                if counts[name] == 1 and name not in self.pinned:
                    out[name] = t
        return out

    def listed(self, caller: Caller) -> list[str]:
        """The ids ``/v1/models`` shows: short where unambiguous, qualified otherwise."""
        ids = self.visible(caller)
        short = {k for k in ids if "/" not in k}
        return sorted(k for k in ids if "/" not in k or k.rsplit("/", 1)[1] not in short)

    @staticmethod
    def _resolve(ctx: Context, name: str, model: str, alias: str | None) -> Target:
        if alias is None:
            bm = registry.get_base_model(ctx, model)
            return Target(name, Path(bm.path), None, None, bm.name)
        mv = registry.resolve_alias(ctx, model, alias)
        if mv.merged_path and (Path(mv.merged_path) / "config.json").is_file():
            return Target(name, Path(mv.merged_path), None, None, mv.label)
        if mv.adapter_path and Path(mv.adapter_path).is_dir():
            base = registry.get_base_model(ctx, mv.base_model_id)
            return Target(name, Path(base.path), mv.id, Path(mv.adapter_path), mv.label)
        raise NotFoundError(f"model {mv.label}: neither merged weights nor an adapter are on disk")
