"""Browser sign-in: a session cookie (HttpOnly, SameSite=Strict, Secure) and a CSRF token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, SecretStr

from imts.api.deps import SESSION_COOKIE, WorkspaceDep, client_of, public, user_ctx
from imts.api.errors import RateLimitedError
from imts.api.limits import Failures
from imts.core.errors import AuthenticationError
from imts.services import identity
from imts.services.identity import UserView
from imts.store.context import Context

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: SecretStr = Field(min_length=1, max_length=1000)


class LoginResponse(BaseModel):
    """The signed-in user and the CSRF token to send as ``X-CSRF-Token`` on unsafe requests."""

    user: UserView
    csrf_token: str
    expires_at: datetime


class LoggedOut(BaseModel):
    ok: bool = True


@router.post("/login", response_model=LoginResponse, dependencies=[Depends(public)])
def login(body: LoginRequest, request: Request, response: Response, ws: WorkspaceDep) -> LoginResponse:
    """Sign in with a user name and password; sets the session cookie (429 after too many failed
    sign-ins for the name, or failed authentications from the address)."""
    failures: Failures = request.app.state.failures
    wait = failures.username_wait(body.username)
    if wait is not None:
        raise RateLimitedError(f"too many failed sign-ins for this user name; retry in {wait} s", wait)
    ctx = Context(ws, "", "", "", "", body.username, "viewer", client_of(request))
    try:
        grant = identity.login(ctx, body.username, body.password.get_secret_value())
    except AuthenticationError:
        failures.failed(username=body.username)  # the address is counted by the middleware (401)
        raise
    response.set_cookie(
        SESSION_COOKIE,
        grant.token,
        max_age=identity.SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    return LoginResponse(user=grant.user, csrf_token=grant.csrf, expires_at=grant.expires_at)


@router.post("/logout", response_model=LoggedOut)
def logout(request: Request, response: Response, ctx: Annotated[Context, Depends(user_ctx)]) -> LoggedOut:
    """End this browser session (an API key stays valid: revoke it under /keys)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        identity.logout(ctx, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return LoggedOut()
