"""Users, memberships, API keys and login sessions: who may act, in which tenant, with which role.

Secrets are shown once and kept only as hashes: passwords as argon2, API keys and session tokens as
SHA-256 (they are long random strings, so a fast hash is enough). Every change is audited in its own
transaction (``store/audit.py``); authentication reads the database on every request, so a revoked key,
a disabled user or a removed membership takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from imts.core.errors import AuthenticationError, ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.permissions import ROLES, Permission, Role, cap, parse_role
from imts.store import audit
from imts.store.context import Context
from imts.store.models import ApiKey, LoginSession, Membership, Project, Tenant, User, utcnow
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)

KEY_PREFIX = "imts_"
SESSION_HOURS = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserView(BaseModel):
    """A user of the server (never its password hash)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    username: str
    is_platform_admin: bool
    disabled: bool
    created_at: datetime
    lang: str = "en"


class MemberView(BaseModel):
    """A user's role in a tenant."""

    username: str
    tenant: str
    role: Role


class KeyView(BaseModel):
    """An API key as listed: its prefix identifies it; the secret itself is never shown again."""

    id: str
    prefix: str
    name: str
    username: str
    tenant: str | None
    project: str | None
    role_ceiling: Role | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class CreatedKey(KeyView):
    """A key just created: ``secret`` is shown this once and stored only as a hash."""

    secret: str


class MeView(BaseModel):
    """The signed-in caller: the user, its tenants and roles, and how it authenticated."""

    user: UserView
    memberships: list[MemberView]
    via: str
    key: KeyView | None = None


@dataclass(frozen=True)
class LoginGrant:
    """A new browser session: the cookie's token and the CSRF token (both shown only now)."""

    token: str
    csrf: str
    user: UserView
    expires_at: datetime


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the user, and, when it came with an API key, the key's limits."""

    user_id: str
    username: str
    platform_admin: bool
    via: str  # "key" or "session"
    key_id: str | None = None
    key_tenant_id: str | None = None
    key_project_id: str | None = None
    ceiling: Role | None = None
    csrf_hash: str | None = None

    @property
    def acts_as_platform_admin(self) -> bool:
        """Platform rights only with a session or an unscoped key without a ceiling."""
        return self.platform_admin and self.key_tenant_id is None and self.ceiling in (None, "admin")

    def reaches_tenant(self, tenant_id: str) -> bool:
        """Whether the key's scope includes this tenant (sessions reach all the user's tenants)."""
        return self.key_tenant_id in (None, tenant_id)

    def reaches_project(self, project_id: str) -> bool:
        return self.key_project_id in (None, project_id)

    def csrf_ok(self, token: str | None) -> bool:
        return (
            self.csrf_hash is not None
            and token is not None
            and hmac.compare_digest(_sha(token), self.csrf_hash)
        )


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise InputError("a password needs at least 10 characters", field="password")


def _user(s: Session, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user '{username}'")
    return user


def _require_platform(ctx: Context) -> None:
    if not ctx.platform_admin:
        from imts.core.errors import PermissionDeniedError

        raise PermissionDeniedError("only a platform administrator may do this")


def has_admin(ctx: Context) -> bool:
    """Whether a platform administrator exists (``imts server`` refuses to start without one)."""
    with ctx.session() as s:
        return bool(s.scalar(select(func.count()).select_from(User).where(User.is_platform_admin)))


def init_admin(ctx: Context, username: str, password: str) -> UserView:
    """Create the first platform administrator; refused once one exists (there is no default one)."""
    if has_admin(ctx):
        raise ConflictError("a platform administrator exists already; add users with `imts users add`")
    return create_user(ctx, username, password, platform_admin=True)


def create_user(ctx: Context, username: str, password: str, platform_admin: bool = False) -> UserView:
    """A new user (platform administrators only)."""
    _require_platform(ctx)
    if not _USERNAME.match(username):
        raise InputError(
            f"'{username}' is not a valid user name (2-64 of a-z 0-9 . _ -, starting with a letter or digit)",
            field="username",
        )
    _check_password(password)
    with ctx.session() as s:
        if s.scalar(select(User.id).where(User.username == username)):
            raise ConflictError(f"user '{username}' exists already")
        user = User(
            id=new_id("usr"),
            username=username,
            password_hash=_hasher.hash(password),
            is_platform_admin=platform_admin,
            disabled=False,
            created_at=utcnow(),
        )
        s.add(user)
        s.flush()
        view = UserView.model_validate(user)
        audit.record(ctx, s, "user.create", ("user", username), after={"platform_admin": platform_admin})
    return view


def list_users(ctx: Context) -> list[UserView]:
    """Every user of the installation (platform administrators only)."""
    _require_platform(ctx)
    with ctx.session() as s:
        return [UserView.model_validate(u) for u in s.scalars(select(User).order_by(User.username))]


def disable_user(ctx: Context, username: str) -> UserView:
    """Disable a user: its sessions end now and its keys stop working on the next request."""
    _require_platform(ctx)
    with ctx.session() as s:
        user = _user(s, username)
        before = user.disabled
        user.disabled = True
        s.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        s.flush()
        audit.record(ctx, s, "user.disable", ("user", username), {"disabled": before}, {"disabled": True})
        return UserView.model_validate(user)


LANGS = ("en", "zh")


def set_lang(ctx: Context, lang: str) -> UserView:
    """Remember the language the console shows the signed-in user (``en`` or ``zh``)."""
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r} (one of: {', '.join(LANGS)})", field="lang")
    with ctx.session() as s:
        user = _user(s, ctx.principal)
        before = user.lang
        user.lang = lang
        s.flush()
        audit.record(ctx, s, "user.lang", ("user", user.username), {"lang": before}, {"lang": lang})
        return UserView.model_validate(user)


# --- memberships (tenant-level contexts) ---


def add_member(ctx: Context, username: str, role: str) -> MemberView:
    """Give ``username`` ``role`` in the context's tenant (or change its role)."""
    ctx.require(Permission.USERS_MANAGE)
    checked = parse_role(role)
    with ctx.session() as s:
        user = _user(s, username)
        m = s.get(Membership, (user.id, ctx.tenant_id))
        before = None if m is None else {"role": m.role}
        if m is None:
            m = Membership(user_id=user.id, tenant_id=ctx.tenant_id, role=checked, created_at=utcnow())
            s.add(m)
        m.role = checked
        s.flush()
        audit.record(ctx, s, "member.set", ("member", username), before, {"role": checked})
    return MemberView(username=username, tenant=ctx.tenant, role=checked)


def list_members(ctx: Context) -> list[MemberView]:
    """The context's tenant's members and their roles."""
    ctx.require(Permission.PROJECT_VIEW)
    with ctx.session() as s:
        rows = s.execute(
            select(User.username, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == ctx.tenant_id)
            .order_by(User.username)
        ).all()
    return [MemberView(username=u, tenant=ctx.tenant, role=r) for u, r in rows]


def remove_member(ctx: Context, username: str) -> MemberView:
    """Remove ``username`` from the context's tenant (effective on its next request)."""
    ctx.require(Permission.USERS_MANAGE)
    with ctx.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        m = None if user is None else s.get(Membership, (user.id, ctx.tenant_id))
        if user is None or m is None:
            raise NotFoundError(f"'{username}' is not a member of tenant '{ctx.tenant}'")
        view = MemberView(username=username, tenant=ctx.tenant, role=m.role)  # type: ignore[arg-type]
        s.delete(m)
        s.flush()
        audit.record(ctx, s, "member.remove", ("member", username), {"role": m.role}, None)
    return view


def role_in(ws: Workspace, who: Principal, tenant: str) -> tuple[str, Role] | None:
    """(tenant id, the caller's effective role there) — None when the tenant does not exist, the
    caller is not a member, or its key does not reach the tenant: all look the same from outside."""
    with ws.session() as s:  # one query on every tenant or project route: the tenant and the membership
        row = s.execute(
            select(Tenant.id, Membership.role)
            .outerjoin(Membership, (Membership.tenant_id == Tenant.id) & (Membership.user_id == who.user_id))
            .where(Tenant.name == tenant)
        ).first()
    if row is None or not who.reaches_tenant(row[0]):
        return None
    tenant_id, member_role = row
    if who.acts_as_platform_admin:
        role: Role = "admin"
    elif member_role is None:
        return None
    else:
        role = member_role
    return tenant_id, cap(role, who.ceiling)


def memberships(ws: Workspace, user_id: str) -> list[MemberView]:
    """A user's tenants and roles."""
    with ws.session() as s:
        rows = s.execute(
            select(User.username, Tenant.name, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .join(Tenant, Tenant.id == Membership.tenant_id)
            .where(User.id == user_id)
            .order_by(Tenant.name)
        ).all()
    return [MemberView(username=u, tenant=t, role=r) for u, t, r in rows]


# --- API keys (owned by a user; ctx.principal is the acting user's name) ---


def _key_view(s: Session, k: ApiKey) -> KeyView:
    # One round trip for the three names (``/me`` shows the key on every call).
    username, tenant, project = s.execute(
        select(
            select(User.username).where(User.id == k.user_id).scalar_subquery(),
            select(Tenant.name).where(Tenant.id == k.tenant_id).scalar_subquery(),
            select(Project.name).where(Project.id == k.project_id).scalar_subquery(),
        )
    ).one()
    username = username or "?"
    return KeyView(
        id=k.id,
        prefix=k.prefix,
        name=k.name,
        username=username,
        tenant=tenant,
        project=project,
        role_ceiling=k.role_ceiling,  # type: ignore[arg-type]
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
        created_at=k.created_at,
    )


def create_key(
    ctx: Context,
    name: str = "",
    tenant: str | None = None,
    project: str | None = None,
    role_ceiling: str | None = None,
    expires_days: float | None = 90,
    username: str | None = None,
    within: Principal | None = None,
) -> CreatedKey:
    """A new API key; its secret is returned this once and kept only as a SHA-256 hash.

    Args:
        name: a label for the owner.
        tenant, project: the scope (project needs tenant); neither: all of the owner's tenants.
        role_ceiling: the highest role the key acts with, whatever the owner's role.
        expires_days: lifetime in days (None: no expiry).
        username: the owner; default the acting user (only a platform administrator names another).
        within: the credential the request came with: a key cannot create a key reaching further or
            acting higher than itself.
    """
    owner_name = username or ctx.principal
    if username and username != ctx.principal:
        _require_platform(ctx)
    ceiling = parse_role(role_ceiling, "role_ceiling") if role_ceiling else None
    if project and not tenant:
        raise InputError("a project-scoped key needs its tenant too", field="tenant")
    if expires_days is not None and expires_days <= 0:
        raise InputError("must be a positive number of days", field="expires_days")
    with ctx.session() as s:
        owner = _user(s, owner_name)
        tenant_id = project_id = None
        if tenant:
            t = s.scalar(select(Tenant).where(Tenant.name == tenant))
            member = t is not None and (owner.is_platform_admin or s.get(Membership, (owner.id, t.id)))
            if t is None or not member:
                raise NotFoundError(f"no tenant '{tenant}'")
            tenant_id = t.id
            if project:
                project_id = s.scalar(
                    select(Project.id).where(Project.tenant_id == t.id, Project.name == project)
                )
                if project_id is None:
                    raise NotFoundError(f"no project '{project}' in tenant '{tenant}'")
        if within is not None and within.via == "key":
            if within.key_tenant_id and tenant_id != within.key_tenant_id:
                raise InputError("this key may only create keys scoped to its own tenant", field="tenant")
            if within.key_project_id and project_id != within.key_project_id:
                raise InputError("this key may only create keys scoped to its own project", field="project")
            if within.ceiling and (ceiling is None or ROLES.index(ceiling) < ROLES.index(within.ceiling)):
                at_most = f"this key may only create keys with a ceiling of at most '{within.ceiling}'"
                raise InputError(at_most, field="role_ceiling")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        k = ApiKey(
            id=new_id("key"),
            prefix=secret[:12],
            secret_hash=_sha(secret),
            user_id=owner.id,
            name=name,
            tenant_id=tenant_id,
            project_id=project_id,
            role_ceiling=ceiling,
            expires_at=None if expires_days is None else now + timedelta(days=expires_days),
            created_at=now,
        )
        s.add(k)
        s.flush()
        view = _key_view(s, k)
        summary = {"owner": owner_name, "prefix": k.prefix, "tenant": tenant, "project": project,
                   "role_ceiling": ceiling}  # fmt: skip
        audit.record(ctx, s, "key.create", ("key", k.id), None, summary)
    return CreatedKey(**view.model_dump(), secret=secret)


def list_keys(ctx: Context, username: str | None = None) -> list[KeyView]:
    """The acting user's keys (a platform administrator may name another user, or ``*`` for all)."""
    target = username or ctx.principal
    if target != ctx.principal:
        _require_platform(ctx)
    with ctx.session() as s:
        q = select(ApiKey).order_by(ApiKey.created_at)
        if target != "*":
            q = q.where(ApiKey.user_id == _user(s, target).id)
        return [_key_view(s, k) for k in s.scalars(q)]


def revoke_key(ctx: Context, key_id: str) -> KeyView:
    """Revoke a key (its owner's or, for a platform administrator, anyone's): refused from the next
    request on. Another user's key is "not found"."""
    with ctx.session() as s:
        k = s.get(ApiKey, key_id)
        owner = None if k is None else s.get(User, k.user_id)
        if k is None or owner is None or (owner.username != ctx.principal and not ctx.platform_admin):
            raise NotFoundError(f"no key '{key_id}'")
        if k.revoked_at is None:
            k.revoked_at = utcnow()
            s.flush()
            audit.record(ctx, s, "key.revoke", ("key", k.id), {"revoked": False}, {"revoked": True})
        return _key_view(s, k)


# --- authentication (before any context exists: these take the workspace) ---


# Keys' last use, to the minute, written by one thread of this process within USE_FLUSH_S: a request
# never writes for it. On SQLite a write waits for the one writer, so a read that recorded its key's use
# waited behind whatever upload or job was committing (benchmarks/api_load.py).
USE_FLUSH_S = 10.0
# database -> (its workspace, its keys' pending last uses, when the first of them was noted)
_uses: dict[str, tuple[Workspace, dict[str, datetime], float]] = {}
_uses_lock = threading.Lock()
_writer: threading.Thread | None = None


def _note_use(ws: Workspace, key_id: str, when: datetime) -> None:
    global _writer
    with _uses_lock:
        _uses.setdefault(ws.settings.db_url, (ws, {}, time.monotonic()))[1][key_id] = when
        if _writer is None or not _writer.is_alive():
            _writer = threading.Thread(target=_write_uses, name="imts-key-use", daemon=True)
            _writer.start()


def _write_uses() -> None:
    """Each database's noted uses, USE_FLUSH_S after the first of them was noted."""
    while True:
        time.sleep(1.0)
        with _uses_lock:
            due = [ws for ws, _, noted in _uses.values() if time.monotonic() - noted >= USE_FLUSH_S]
        for ws in due:
            flush_key_uses(ws)


def flush_key_uses(ws: Workspace) -> None:
    """Write the keys' last uses noted in this process (the writer thread does within USE_FLUSH_S;
    `imts server` also on its way out)."""
    with _uses_lock:
        entry = _uses.pop(ws.settings.db_url, None)
    if entry is None or not entry[1]:
        return
    try:
        with ws.session() as s:
            for key_id, when in entry[1].items():
                s.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < when))
                    .values(last_used_at=when)
                )
    except Exception as exc:  # bookkeeping only: noted again on the key's next use
        log.warning("could not record API keys' last use: %s", exc)


def authenticate_key(ws: Workspace, secret: str) -> Principal:
    """The caller behind an API key, or ``AuthenticationError`` (the secret never enters a message)."""
    now = utcnow()
    with ws.session() as s:  # one query: the key and its user
        row = s.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.secret_hash == _sha(secret))
        ).first()
        if row is None or row[1].disabled or row[0].revoked_at is not None:
            raise AuthenticationError("invalid, revoked or disabled API key")
        k, user = row
        if k.expires_at is not None and k.expires_at <= now:
            raise AuthenticationError(f"API key {k.prefix}… expired")
        if k.last_used_at is None or now - k.last_used_at > timedelta(minutes=1):
            _note_use(ws, k.id, now)
        return Principal(user.id, user.username, user.is_platform_admin, "key", k.id, k.tenant_id,
                         k.project_id, k.role_ceiling)  # type: ignore[arg-type]  # fmt: skip


def login(ctx: Context, username: str, password: str) -> LoginGrant:
    """Check a password and open a browser session (``ctx.principal`` is ignored: the user acts)."""
    with ctx.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None or user.disabled:
            raise AuthenticationError("wrong user name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(hours=SESSION_HOURS)
        s.add(LoginSession(id_hash=_sha(token), user_id=user.id, csrf_hash=_sha(csrf), expires_at=expires,
                           created_at=utcnow()))  # fmt: skip
        s.flush()
        acting = Context(ctx.ws, "", "", "", "", username, "viewer", ctx.client)
        audit.record(acting, s, "session.login", ("user", username))
        return LoginGrant(token, csrf, UserView.model_validate(user), expires)


def authenticate_session(ws: Workspace, token: str) -> Principal:
    """The caller behind a session cookie, or ``AuthenticationError``."""
    with ws.session() as s:  # one query: the session and its user
        found = s.execute(
            select(LoginSession, User).join(User, User.id == LoginSession.user_id)
            .where(LoginSession.id_hash == _sha(token))
        ).first()  # fmt: skip
        if found is None or found[1].disabled or found[0].expires_at <= utcnow():
            raise AuthenticationError("not signed in, or the session expired")
        row, user = found
        return Principal(user.id, user.username, user.is_platform_admin, "session", csrf_hash=row.csrf_hash)


def logout(ctx: Context, token: str) -> None:
    """End the session behind ``token`` (unknown tokens are ignored)."""
    with ctx.session() as s:
        if s.execute(delete(LoginSession).where(LoginSession.id_hash == _sha(token))).rowcount:
            audit.record(ctx, s, "session.logout", ("user", ctx.principal))


def me(ws: Workspace, who: Principal) -> MeView:
    """The caller: user, memberships (within its key's scope) and the key it came with."""
    with ws.session() as s:
        user = UserView.model_validate(s.get(User, who.user_id))
        key = _key_view(s, k) if who.key_id and (k := s.get(ApiKey, who.key_id)) else None
        rows = s.execute(
            select(Tenant.id, Tenant.name, Membership.role)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(Membership.user_id == who.user_id)
            .order_by(Tenant.name)
        ).all()
    ms = [MemberView(username=user.username, tenant=name, role=cap(role, who.ceiling))  # type: ignore[arg-type]
          for tenant_id, name, role in rows if who.reaches_tenant(tenant_id)]  # fmt: skip
    return MeView(user=user, memberships=ms, via=who.via, key=key)
