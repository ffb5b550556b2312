"""Aliases: names (``production``, ``staging``, ``champion``, any) that move between the versions of a
model, with their whole history, and protected aliases only a role that may deploy moves.

Each move closes the alias's open span (``unset_at``) and opens a new one in the same transaction, so
"what did ``production`` point to at time T" is the span open at T. Every move also bumps the project's
alias-change sequence number (``alias_clock``): a server keeps the number it last saw and asks
``seq`` — one row — before each request; only when it grew does it re-read the aliases.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imts.core.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from imts.core.permissions import ROLES, Permission, parse_role
from imts.registry.models import find_version, owned_version
from imts.registry.views import AliasProtectionView, AliasState, AliasView, ModelVersionView
from imts.store import audit
from imts.store.context import Context
from imts.store.models import AliasClock, AliasProtection, ModelAlias, ModelVersion

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
RESERVED = {"latest"}  # ``NAME`` alone already means the newest version


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias name, else an ``InputError`` naming the field."""
    if not NAME.match(alias) or alias in RESERVED:
        raise InputError(
            f"'{alias}' is not an alias name: lower-case letters, digits, '-' and '_', starting with a "
            f"letter, at most 64 characters, not {', '.join(sorted(RESERVED))}",
            field="alias",
        )
    return alias


def set_alias(ctx: Context, ref: str, alias: str) -> AliasView:
    """Point ``alias`` of the model that ``ref`` names at that version (moving it if set elsewhere).

    Raises:
        PermissionDeniedError: the role may not deploy, or the alias is protected above the role.
        ConflictError: the version is archived.
    """
    check_alias(alias)
    ctx.require(Permission.MODEL_DEPLOY)
    with ctx.session() as s:
        seq = _tick(s, ctx)  # first: the clock row's lock orders concurrent moves of this project
        mv = owned_version(s, ctx, ref)
        if mv.archived_at is not None:
            raise ConflictError(f"model {mv.name}:{mv.version} is archived: unarchive it before aliasing it")
        protection = _protection(s, ctx, mv.name, alias)
        _check_protected(ctx, protection, mv.name, alias)
        now = datetime.now(UTC)
        current = _open(s, ctx, mv.name, alias)
        if current is not None and current.version_id == mv.id:
            raise ConflictError(f"alias '{alias}' already points to {mv.name}:{mv.version}")
        before = None
        if current is not None:
            before = {"version": f"{mv.name}:{current.version}", "version_id": current.version_id}
            current.unset_at, current.unset_by, current.unset_seq = now, ctx.principal, seq
        row = ModelAlias(
            project_id=ctx.project_id, model=mv.name, alias=alias, version_id=mv.id, version=mv.version,
            set_at=now, set_by=ctx.principal, set_seq=seq,
        )  # fmt: skip
        s.add(row)
        s.flush()
        after = {"version": f"{mv.name}:{mv.version}", "version_id": mv.id, "seq": seq}
        audit.record(ctx, s, "model.alias.set", ("model_alias", f"{mv.name}@{alias}"), before, after)
        return _view(row, protection is not None)


def remove_alias(ctx: Context, model: str, alias: str) -> AliasView:
    """Remove ``alias`` from model ``model`` (its history stays); returns the span it ended.

    Raises:
        NotFoundError: the alias points nowhere now.
    """
    check_alias(alias)
    ctx.require(Permission.MODEL_DEPLOY)
    with ctx.session() as s:
        seq = _tick(s, ctx)
        protection = _protection(s, ctx, model, alias)
        _check_protected(ctx, protection, model, alias)
        current = _open(s, ctx, model, alias)
        if current is None:
            raise NotFoundError(f"model '{model}' has no alias '{alias}'")
        current.unset_at, current.unset_by, current.unset_seq = datetime.now(UTC), ctx.principal, seq
        s.flush()
        before = {"version": f"{model}:{current.version}", "version_id": current.version_id}
        audit.record(ctx, s, "model.alias.remove", ("model_alias", f"{model}@{alias}"), before, {"seq": seq})
        return _view(current, protection is not None)


def protect(ctx: Context, model: str, alias: str, min_role: str = "admin") -> AliasProtectionView:
    """Protect ``alias`` of ``model``: from now on only a role at least ``min_role`` moves it.

    Raises:
        PermissionDeniedError: the caller's role is below ``min_role`` or below the current protection.
    """
    check_alias(alias)
    role = parse_role(min_role, "min_role")
    ctx.require(Permission.MODEL_DEPLOY)
    with ctx.session() as s:
        _known_model(s, ctx, model)
        row = _protection(s, ctx, model, alias)
        _check_protected(ctx, row, model, alias)
        if ROLES.index(ctx.role) > ROLES.index(role):
            raise PermissionDeniedError(
                f"role '{ctx.role}' may not protect an alias for role '{role}' (a higher role)"
            )
        before = None if row is None else {"min_role": row.min_role}
        if row is None:
            row = AliasProtection(project_id=ctx.project_id, model=model, alias=alias)
            s.add(row)
        row.min_role, row.created_by, row.created_at = role, ctx.principal, datetime.now(UTC)
        s.flush()
        audit.record(ctx, s, "model.alias.protect", ("model_alias", f"{model}@{alias}"), before,
                     {"min_role": role})  # fmt: skip
        return AliasProtectionView.model_validate(row)


def unprotect(ctx: Context, model: str, alias: str) -> AliasProtectionView:
    """Lift the protection of ``alias`` (only a role the protection admits may)."""
    check_alias(alias)
    ctx.require(Permission.MODEL_DEPLOY)
    with ctx.session() as s:
        row = _protection(s, ctx, model, alias)
        if row is None:
            raise NotFoundError(f"alias '{alias}' of model '{model}' is not protected")
        _check_protected(ctx, row, model, alias)
        view = AliasProtectionView.model_validate(row)
        s.delete(row)
        s.flush()
        audit.record(ctx, s, "model.alias.unprotect", ("model_alias", f"{model}@{alias}"),
                     {"min_role": view.min_role}, None)  # fmt: skip
        return view


def protections(ctx: Context) -> list[AliasProtectionView]:
    """The project's protected aliases."""
    with ctx.session() as s:
        q = select(AliasProtection).where(AliasProtection.project_id == ctx.project_id)
        return [AliasProtectionView.model_validate(r) for r in s.scalars(q.order_by(AliasProtection.model))]


def history(
    ctx: Context, model: str, alias: str | None = None, at: datetime | None = None
) -> list[AliasView]:
    """The spans of ``model``'s aliases (of ``alias`` only if given), oldest first; with ``at``, only
    the spans open at that instant — what each alias pointed to then."""
    with ctx.session() as s:
        _known_model(s, ctx, model)
        q = select(ModelAlias).where(ModelAlias.project_id == ctx.project_id, ModelAlias.model == model)
        if alias is not None:
            q = q.where(ModelAlias.alias == check_alias(alias))
        if at is not None:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            q = q.where(ModelAlias.set_at <= at)
            q = q.where((ModelAlias.unset_at.is_(None)) | (ModelAlias.unset_at > at))
        rows = list(s.scalars(q.order_by(ModelAlias.set_seq, ModelAlias.id)))
        protected = _protected_names(s, ctx, model)
        return [_view(r, r.alias in protected) for r in rows]


def state(ctx: Context) -> AliasState:
    """Every alias of the project now, with the sequence number they are current as of."""
    with ctx.session() as s:
        seq = s.scalar(select(AliasClock.seq).where(AliasClock.project_id == ctx.project_id)) or 0
        q = select(ModelAlias).where(ModelAlias.project_id == ctx.project_id, ModelAlias.unset_at.is_(None))
        rows = list(s.scalars(q.order_by(ModelAlias.model, ModelAlias.alias)))
        prot = {
            (p.model, p.alias)
            for p in s.scalars(select(AliasProtection).where(AliasProtection.project_id == ctx.project_id))
        }
        return AliasState(seq=seq, aliases=[_view(r, (r.model, r.alias) in prot) for r in rows])


def seq(ctx: Context) -> int:
    """The project's alias-change sequence number: it grows with every alias move (0: none yet)."""
    with ctx.session() as s:
        return s.scalar(select(AliasClock.seq).where(AliasClock.project_id == ctx.project_id)) or 0


def resolve(ctx: Context, model: str, alias: str) -> ModelVersionView:
    """The version ``alias`` of ``model`` points to now."""
    mv = find_version(ctx, f"{model}@{alias}")
    if mv is None:
        raise NotFoundError(f"model '{model}' has no alias '{alias}'")
    return mv


def current_version_id(s: Session, ctx: Context, model: str, alias: str) -> str | None:
    """The id of the version ``alias`` of ``model`` points to now (None: nowhere)."""
    row = _open(s, ctx, model, alias)
    return None if row is None else row.version_id


def _tick(s: Session, ctx: Context) -> int:
    bumped = s.execute(
        update(AliasClock).where(AliasClock.project_id == ctx.project_id).values(seq=AliasClock.seq + 1)
    )
    if getattr(bumped, "rowcount", 0) == 0:
        s.add(AliasClock(project_id=ctx.project_id, seq=1))
        s.flush()
        return 1
    return int(s.scalar(select(AliasClock.seq).where(AliasClock.project_id == ctx.project_id)) or 0)


def _open(s: Session, ctx: Context, model: str, alias: str) -> ModelAlias | None:
    return s.scalar(
        select(ModelAlias).where(
            ModelAlias.project_id == ctx.project_id,
            ModelAlias.model == model,
            ModelAlias.alias == alias,
            ModelAlias.unset_at.is_(None),
        )
    )


def _protection(s: Session, ctx: Context, model: str, alias: str) -> AliasProtection | None:
    return s.get(AliasProtection, (ctx.project_id, model, alias))


def _protected_names(s: Session, ctx: Context, model: str) -> set[str]:
    q = select(AliasProtection.alias).where(
        AliasProtection.project_id == ctx.project_id, AliasProtection.model == model
    )
    return set(s.scalars(q))


def _check_protected(ctx: Context, row: AliasProtection | None, model: str, alias: str) -> None:
    if row is not None and ROLES.index(ctx.role) > ROLES.index(parse_role(row.min_role)):
        raise PermissionDeniedError(
            f"alias '{alias}' of model '{model}' is protected: only role '{row.min_role}' or higher "
            f"moves it (your role: '{ctx.role}')"
        )


def _known_model(s: Session, ctx: Context, model: str) -> None:
    q = select(ModelVersion.id).where(ModelVersion.project_id == ctx.project_id, ModelVersion.name == model)
    if s.scalar(q.limit(1)) is None:
        raise NotFoundError(f"no model '{model}' in this project")


def _view(row: ModelAlias, protected: bool) -> AliasView:
    return AliasView.model_validate(row).model_copy(update={"protected": protected})
