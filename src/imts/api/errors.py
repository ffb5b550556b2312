"""One error shape for every error: ``{"error": {"message", "type", "code", "param"}}``.

``ImtsError`` subclasses map onto HTTP statuses; validation errors name the offending field; anything
unexpected is a 500 whose body says nothing of its cause (the traceback goes to the server's log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from imts.core.errors import (
    AuthenticationError,
    ConflictError,
    ImtsError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[ImtsError], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InputError, 422, "invalid_input"),
    (PermissionDeniedError, 403, "permission_denied"),
    (AuthenticationError, 401, "unauthenticated"),
]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (400, "a malformed request (e.g. a body that is not JSON)"),
        (401, "no valid credentials"),
        (403, "the role lacks the permission"),
        (404, "not found (or in a tenant the caller is not in)"),
        (409, "conflict"),
        (413, "the request body is too large (IMTS_API_MAX_BODY_MB)"),
        (422, "invalid input"),
        (429, "too many requests: retry after the Retry-After header's seconds"),
    ]
}
# The same errors for a route whose success is not JSON (plain text, server-sent events): FastAPI would
# document them under the route's media type, but errors are always JSON.
JSON_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {
        "description": spec["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for code, spec in ERROR_RESPONSES.items()
}


class RateLimitedError(Exception):
    """Raised by a route over a limit of its own (sign-ins per user name): 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error(
    status: int, message: str, kind: str, code: str | None = None, param: str | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(message=message, type=kind, code=code, param=param))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ImtsError)
    async def imts_error(_: Request, exc: ImtsError) -> JSONResponse:
        for cls, status, kind in STATUS:
            if isinstance(exc, cls):
                param = exc.field if isinstance(exc, InputError | NotFoundError) else None
                return error(status, str(exc), kind, param=param)
        return error(400, str(exc), "bad_request")

    @app.exception_handler(RateLimitedError)
    async def rate_limited(_: Request, exc: RateLimitedError) -> JSONResponse:
        response = error(429, str(exc), "rate_limited")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        # The message names the field and the rule, never the value sent (it may be a password).
        return error(
            422, f"{param or 'request'}: {first.get('msg')}", "invalid_input", first.get("type"), param
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kinds = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        kind = kinds.get(exc.status_code, "http_error")
        return error(exc.status_code, str(exc.detail), kind)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, "internal server error (see the server's log)", "internal")
