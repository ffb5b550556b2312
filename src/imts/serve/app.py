"""The OpenAI-compatible app: ``/v1/models`` and ``/v1/chat/completions`` (whole or streamed as SSE)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from imts.core.ids import new_id
from imts.inference.generate import Sampling
from imts.serve.engine import Engine
from imts.serve.schemas import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    Choice,
    ErrorBody,
    ErrorResponse,
    ModelCard,
    ModelList,
    Usage,
)

log = logging.getLogger(__name__)


def create_app(
    model_path: Path, model_name: str, api_key: str | None = None, adapter: Path | None = None
) -> FastAPI:
    """An app serving one model under ``model_name`` (with ``adapter``: that LoRA adapter merged into
    it on load); with ``api_key``, requests must bear it."""
    engine = Engine(model_path, model_name, adapter)
    created = int(time.time())
    app = FastAPI(title="IMTS OpenAI-compatible endpoint", version="1")

    @app.middleware("http")
    async def check_key(request: Request, call_next):  # type: ignore[no-untyped-def]
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            # The presented key is never logged, only that it was wrong.
            log.warning("rejected a request to %s: missing or wrong API key", request.url.path)
            return error(401, "invalid API key", "invalid_request_error", code="invalid_api_key")
        return await call_next(request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = f"{exc.detail}: {request.method} {request.url.path}"
        return error(exc.status_code, message, kind, code=_CODES.get(exc.status_code))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            message, code, param = f"The body is not valid JSON: {first.get('msg', '')}", "invalid_json", None
        elif first.get("type") == "extra_forbidden":
            message, code = f"Unrecognized request argument supplied: {param}", "unknown_parameter"
        else:
            where = f"'{param}': " if param else ""
            message, code = f"{where}{first.get('msg', 'invalid value')}", "invalid_value"
        return error(400, message, "invalid_request_error", param=param, code=code)

    @app.get("/v1/models", response_model=ModelList)
    def models() -> ModelList:
        """The model this endpoint serves."""
        return ModelList(data=[ModelCard(id=engine.name, created=created)])

    @app.post("/v1/chat/completions", response_model=ChatResponse)
    def chat(req: ChatRequest):  # type: ignore[no-untyped-def]
        """A chat completion; with ``stream: true`` server-sent ``chat.completion.chunk`` events."""
        if req.model not in (engine.name, "default"):
            return error(
                404,
                f"The model '{req.model}' does not exist here (this server serves '{engine.name}')",
                "invalid_request_error",
                param="model",
                code="model_not_found",
            )
        if (name := req.unsupported()) is not None:
            return error(
                400,
                f"'{name}' is not supported by this server (IMTS serves n, stop, max_tokens, temperature, "
                "top_p, seed and stream); leave it out",
                "invalid_request_error",
                param=name,
                code="unsupported_parameter",
            )
        messages = [m.model_dump() for m in req.messages]
        limit, stops, seed = req.token_limit(), req.stop_list(), req.seed or 0
        # n choices are n generations, seeded one after another (greedy ones are identical, as at OpenAI).
        samplings = [
            Sampling(temperature=req.temperature, top_p=req.top_p, seed=seed + i) for i in range(req.n)
        ]
        cid = new_id("chatcmpl")
        if req.stream:
            streams = [engine.stream(messages, limit, s, stops) for s in samplings]
            return StreamingResponse(_sse(streams, cid, engine.name), media_type="text/event-stream")
        done = [engine.complete(messages, limit, s, stops) for s in samplings]
        prompt_tokens = done[0].prompt_tokens
        completion_tokens = sum(d.completion_tokens for d in done)
        return ChatResponse(
            id=cid,
            created=int(time.time()),
            model=engine.name,
            choices=[
                Choice(
                    index=i,
                    message=ChatMessage(role="assistant", content=d.text),
                    finish_reason=d.finish_reason,  # type: ignore[arg-type]
                )
                for i, d in enumerate(done)
            ],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    return app


_CODES = {404: "not_found", 405: "method_not_allowed"}


def error(
    status: int, message: str, kind: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """An error response in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    body = ErrorResponse(error=ErrorBody(message=message, type=kind, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


def _sse(streams: list[Iterator[str]], cid: str, model: str) -> Iterator[str]:
    """The choices one after another, each chunk naming its choice's ``index``."""

    def chunk(index: int, delta: dict[str, str], finish: str | None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    for index, pieces in enumerate(streams):
        yield chunk(index, {"role": "assistant"}, None)
        for piece in pieces:
            yield chunk(index, {"content": piece}, None)
        yield chunk(index, {}, "stop")
    yield "data: [DONE]\n\n"


def serve(
    model_path: Path,
    model_name: str,
    host: str,
    port: int,
    api_key: str | None = None,
    adapter: Path | None = None,
) -> None:
    """Run the endpoint until interrupted."""
    import uvicorn

    app = create_app(model_path, model_name, api_key, adapter)
    uvicorn.run(app, host=host, port=port, log_level="info")
