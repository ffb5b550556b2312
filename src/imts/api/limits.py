"""Limits applied to every route before it runs, and the latency every route is measured with.

One ASGI middleware (``LimitsMiddleware``):

- **rate limits** (the `limits` library, moving window): per API key or browser session
  (``api_rate_limit``), per client address for requests without credentials
  (``api_rate_limit_anonymous``); over the limit: 429 with ``Retry-After`` seconds. Credentials are
  identified by their SHA-256, so no secret is kept in memory or ever logged.
- **failed authentications** (``Failures``): every 401 counts against the client address
  (``api_auth_failure_limit``), and a failed sign-in also against the user name
  (``api_login_failure_limit``, checked by the login route); an address over its limit gets 429 on
  every request, so a fresh random key per request escapes nothing.
- **request size**: a body over ``api_max_body_mb`` is refused with 413 (by its ``Content-Length``, or
  while it streams when it has none); upload chunks carry their own limit (their route checks it).
- **latency**: a Prometheus histogram by method, route template (``/api/v1/tenants/{tenant}/...``,
  never the real names) and status.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CollectorRegistry, Histogram
from starlette.exceptions import HTTPException

from imts.api.errors import ErrorBody, ErrorDetail
from imts.core.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Routes that check their body size themselves (an upload chunk may exceed the API's general limit).
API_PREFIX = "/api/v1"
OWN_SIZE_LIMIT = re.compile(r"^/api/v1/tenants/[^/]+/projects/[^/]+/uploads/[^/]+/chunks/")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BodyTooLarge(HTTPException):
    """The streamed body passed the limit (no ``Content-Length`` announced it): 413 through the app's
    error handler, or from here when it escapes the app before a response started."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


def _json(status: int, message: str, kind: str, headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    body = ErrorBody(error=ErrorDetail(message=message, type=kind)).model_dump_json().encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http.response.start", "status": status, "headers": raw}, body


async def _refuse(
    send: Send, status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> None:
    start, body = _json(status, message, kind, headers or {})
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return None


def caller_identity(scope: Scope) -> tuple[str, bool]:
    """(bucket name, has credentials): a key's or session's SHA-256, else the client address."""
    auth = _header(scope, b"authorization")
    if auth and " " in auth:
        return "key:" + hashlib.sha256(auth.partition(" ")[2].strip().encode()).hexdigest()[:32], True
    cookie = _header(scope, b"cookie") or ""
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "imts_session" and value:
            return "session:" + hashlib.sha256(value.encode()).hexdigest()[:32], True
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown"), False


class Failures:
    """Failed authentications per client address and failed sign-ins per user name (one per app)."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.api_rate_limit_storage))
        self.per_address = parse_many(settings.api_auth_failure_limit)
        self.per_username = parse_many(settings.api_login_failure_limit)

    def _wait(self, items: list[RateLimitItem], bucket: str) -> int | None:
        waits = []
        for item in items:
            if not self.limiter.test(item, bucket):
                reset = self.limiter.get_window_stats(item, bucket).reset_time
                waits.append(max(1, math.ceil(reset - time.time())))
        return max(waits) if waits else None

    def address_wait(self, address: str) -> int | None:
        """Seconds ``address`` must wait (None: under its limit of failed authentications)."""
        return self._wait(self.per_address, "authfail:" + address)

    def username_wait(self, username: str) -> int | None:
        """Seconds sign-ins as ``username`` must wait (None: under its limit of failed sign-ins)."""
        return self._wait(self.per_username, "loginfail:" + _name_key(username))

    def failed(self, address: str | None = None, username: str | None = None) -> None:
        """Count one failure against the address and/or the user name."""
        if address:
            for item in self.per_address:
                self.limiter.hit(item, "authfail:" + address)
        if username:
            for item in self.per_username:
                self.limiter.hit(item, "loginfail:" + _name_key(username))


def _name_key(username: str) -> str:
    # Hashed: a mistyped password pasted into the name field must not sit in memory as is.
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class LimitsMiddleware:
    """Rate and size limits, and the latency histogram (see the module's docstring)."""

    def __init__(
        self, app: ASGIApp, settings: Settings, registry: CollectorRegistry, failures: Failures
    ) -> None:
        self.app = app
        self.failures = failures
        self.max_body = int(settings.api_max_body_mb * 1024 * 1024)
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.api_rate_limit_storage))
        self.per_key = parse_many(settings.api_rate_limit)
        self.anonymous = parse_many(settings.api_rate_limit_anonymous)
        self.latency = Histogram(
            "imts_api_request_duration_seconds",
            "API request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def _retry_after(self, bucket: str, credentialed: bool) -> int | None:
        """Seconds to wait when over a limit (None: within every limit; the request is counted)."""
        waits = []
        for item in self.per_key if credentialed else self.anonymous:
            if not self.limiter.hit(item, bucket):
                reset = self.limiter.get_window_stats(item, bucket).reset_time
                waits.append(max(1, math.ceil(reset - time.time())))
        return max(waits) if waits else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        try:
            await self._limited(scope, receive, send_status, status)
            if status["code"] == 401:
                self.failures.failed(address=client_address(scope))
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            # FastAPI leaves the router's own route (without the /api/v1 prefix) in the scope.
            if (
                scope["path"].startswith(API_PREFIX)
                and template.startswith("/")
                and not template.startswith(API_PREFIX)
            ):
                template = API_PREFIX + template
            self.latency.labels(scope["method"], template, str(status["code"])).observe(
                time.perf_counter() - started
            )

    async def _limited(self, scope: Scope, receive: Receive, send: Send, status: dict[str, Any]) -> None:
        failed_wait = self.failures.address_wait(client_address(scope))
        if failed_wait is not None:
            await _refuse(
                send,
                429,
                f"too many failed authentications from this address; retry in {failed_wait} s",
                "rate_limited",
                {"Retry-After": str(failed_wait)},
            )
            return
        bucket, credentialed = caller_identity(scope)
        wait = self._retry_after(bucket, credentialed)
        if wait is not None:
            who = "this API key or session" if credentialed else "this address without credentials"
            await _refuse(
                send,
                429,
                f"too many requests from {who}; retry in {wait} s",
                "rate_limited",
                {"Retry-After": str(wait)},
            )
            return
        if OWN_SIZE_LIMIT.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.max_body
        too_large = f"the request body exceeds the server's limit of {limit} bytes (IMTS_API_MAX_BODY_MB)"
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _refuse(send, 413, too_large, "payload_too_large")
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(too_large)
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            if status["sent"]:
                raise
            await _refuse(send, 413, too_large, "payload_too_large")
