"""The OpenAI-compatible app: ``/v1/models``, ``/v1/chat/completions`` (whole or streamed as SSE),
``/v1/usage``, ``/health`` and ``/metrics``, over every deployment the caller's key may use."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from imts.core.errors import AuthenticationError
from imts.core.ids import new_id
from imts.inference.generate import Sampling
from imts.serve.batcher import BaseModel, Finished, Job
from imts.serve.router import Caller, KeyAccess, LocalAccess, Router, Target
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
from imts.serve.usage import KeyUsage, Meter
from imts.store.context import Context

log = logging.getLogger(__name__)


class Models:
    """The bases in memory (one per folder) and the adapters loaded into them; unused ones retire."""

    def __init__(self, window_s: float, max_batch: int, meter: Meter) -> None:
        self.window_s, self.max_batch, self.meter = window_s, max_batch, meter
        self.bases: dict[Path, BaseModel] = {}
        self._lock = threading.Lock()

    def base_for(self, target: Target) -> BaseModel:
        with self._lock:
            base = self.bases.get(target.base)
            if base is None:
                base = BaseModel(target.base, self.window_s, self.max_batch, self.meter.batch.observe)
                self.bases[target.base] = base
        if target.adapter is not None and target.adapter_path is not None:
            base.ensure_adapter(target.adapter, target.adapter_path)
        return base

    def retire(self, target: Target) -> None:
        """Unload the adapter of a target no deployment serves any more."""
        base = self.bases.get(target.base)
        if base is not None and target.adapter is not None:
            base.retire(target.adapter)


def create_app(
    access: KeyAccess | LocalAccess,
    pinned: dict[str, tuple[Path, Path | None]] | None = None,
    window_ms: float = 5.0,
    max_batch: int = 32,
    requests_per_minute: int = 0,
    tokens_per_minute: int = 0,
    tools: tuple[str, ...] = (),
) -> FastAPI:
    """An app serving the deployments each caller's key reaches (``access``), plus ``pinned`` folders.

    Args:
        access: ``KeyAccess`` (platform API keys) or ``LocalAccess`` (one local user).
        pinned: served id -> (model folder, LoRA adapter folder or None), served to every caller
            (``imts serve --model``).
        tools: decoding tools of every request that names none (``decoding_tools``).
    """
    meter = Meter(requests_per_minute, tokens_per_minute)
    models = Models(window_ms / 1000, max_batch, meter)
    router = Router(pinned, on_dropped=models.retire)
    created = int(time.time())
    app = FastAPI(title="IMTS OpenAI-compatible endpoint", version="1")
    app.state.models = models

    def authenticate(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        secret = header[7:] if header.startswith("Bearer ") else None
        try:
            return access.caller(secret)
        except AuthenticationError:
            # The presented key is never logged, only that it was wrong.
            log.warning("rejected a request to %s: missing or wrong API key", request.url.path)
            raise

    @app.middleware("http")
    async def check_key(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.url.path in ("/health", "/metrics"):
            return await call_next(request)
        from starlette.concurrency import run_in_threadpool

        try:
            request.state.caller = await run_in_threadpool(authenticate, request)
        except AuthenticationError as exc:
            return error(401, str(exc), "invalid_request_error", code="invalid_api_key")
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

    @app.get("/health")
    def health() -> dict[str, object]:
        """Liveness and what is loaded: base folders and their adapters."""
        return {
            "status": "ok",
            "bases": {str(p): sorted(b.adapters) for p, b in models.bases.items()},
        }

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        """Prometheus metrics: requests and tokens per model and key, latency, batch sizes."""
        return PlainTextResponse(generate_latest(meter.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList)
    def list_models(request: Request) -> ModelList:
        """The models the caller's key may use."""
        caller: Caller = request.state.caller
        return ModelList(data=[ModelCard(id=i, created=created) for i in router.listed(caller)])

    @app.get("/v1/usage", response_model=KeyUsage)
    def usage(request: Request) -> KeyUsage:
        """What the caller's key used since the server started (requests, prompt and completion tokens)."""
        return meter.of(request.state.caller.key)

    @app.post("/v1/chat/completions", response_model=ChatResponse)
    def chat(req: ChatRequest, request: Request):  # type: ignore[no-untyped-def]
        """A chat completion; with ``stream: true`` server-sent ``chat.completion.chunk`` events."""
        caller: Caller = request.state.caller
        visible = router.visible(caller)
        target = visible.get(req.model)
        if target is None and req.model == "default" and len(visible) == 1:
            target = next(iter(visible.values()))
        if target is None:
            names = ", ".join(router.listed(caller)) or "none"
            return error(
                404,
                f"The model '{req.model}' does not exist or your key may not use it (yours: {names})",
                "invalid_request_error",
                param="model",
                code="model_not_found",
            )
        if isinstance(target, str):
            return error(404, f"'{req.model}' serves nothing now: {target}", "invalid_request_error",
                         param="model", code="model_not_found")  # fmt: skip
        if (name := req.unsupported()) is not None:
            return error(
                400,
                f"'{name}' is not supported by this server (IMTS serves n, stop, max_tokens, temperature, "
                "top_p, seed and stream); leave it out",
                "invalid_request_error",
                param=name,
                code="unsupported_parameter",
            )
        if (why := meter.admit(caller.key)) is not None:
            return error(429, f"Rate limit reached: {why}", "requests", code="rate_limit_exceeded")
        started = time.perf_counter()
        base = models.base_for(target)
        ids = base.encode([m.model_dump() for m in req.messages])
        limit, stops, seed = req.token_limit(), req.stop_list(), req.seed or 0
        # n choices are n generations, seeded one after another (greedy ones are identical, as at OpenAI).
        samplings = [
            Sampling(temperature=req.temperature, top_p=req.top_p, seed=seed + i) for i in range(req.n)
        ]
        use = tools if req.decoding_tools is None else tuple(req.decoding_tools)
        jobs = [Job(ids, target.adapter, limit, s, stops, use) for s in samplings]
        streams = [base.submit(j) for j in jobs]  # all queued now: the n choices share a batch
        cid, model_id = new_id("chatcmpl"), req.model

        def account(done: list[Finished]) -> int:
            completion = sum(d.completion_tokens for d in done)
            meter.record(caller.key, model_id, len(ids), completion, time.perf_counter() - started)
            return completion

        if req.stream:
            return StreamingResponse(_sse(streams, cid, model_id, account), media_type="text/event-stream")
        texts, done = [], []
        for events in streams:
            pieces = list(events)
            done.append(pieces[-1])
            texts.append("".join(p for p in pieces if isinstance(p, str)).strip())
        completion = account(done)  # type: ignore[arg-type]
        return ChatResponse(
            id=cid,
            created=int(time.time()),
            model=model_id,
            choices=[
                Choice(
                    index=i,
                    message=ChatMessage(role="assistant", content=text),
                    finish_reason=d.finish_reason,  # type: ignore[union-attr]
                )
                for i, (text, d) in enumerate(zip(texts, done, strict=True))
            ],
            usage=Usage(
                prompt_tokens=len(ids), completion_tokens=completion, total_tokens=len(ids) + completion
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


def _sse(streams: list[Iterator[str | Finished]], cid: str, model: str, account: object) -> Iterator[str]:
    """The choices one after another, each chunk naming its choice's ``index``; usage is counted when
    the last choice ends."""

    def chunk(index: int, delta: dict[str, str], finish: str | None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    done: list[Finished] = []
    for index, events in enumerate(streams):
        yield chunk(index, {"role": "assistant"}, None)
        for event in events:
            if isinstance(event, Finished):
                done.append(event)
                yield chunk(index, {}, event.finish_reason)
            else:
                yield chunk(index, {"content": event}, None)
    account(done)  # type: ignore[operator]
    yield "data: [DONE]\n\n"


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run the endpoint until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info")


def local_access(ctx: Context, secret: str | None) -> LocalAccess:
    """The single local user's access (``imts serve --local``)."""
    return LocalAccess(ctx, secret)
