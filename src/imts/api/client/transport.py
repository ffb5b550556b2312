"""The API's transport: errors, the authenticated HTTP client, chunked uploads, server-sent events."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from imts.core.errors import ImtsError

API = "/api/v1"
CHUNK = 8 << 20
FINISHED = ("succeeded", "failed", "cancelled")
REMOTE_SOURCES = ("http://", "https://", "s3://")
M = TypeVar("M")


class ApiError(ImtsError):
    """The server refused a request; ``message`` is its error body's message (file:line for bad rows)."""

    def __init__(self, status: int, message: str, kind: str = "") -> None:
        self.status, self.message, self.kind = status, message, kind
        super().__init__(f"{status} {kind}: {message}" if kind else f"{status}: {message}")


def connect(server: str, key: str, timeout: float = 60.0) -> httpx.Client:
    """An HTTP client for ``server`` authenticating with the API key ``key``."""
    return httpx.Client(
        base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


def _checked(r: httpx.Response) -> Any:
    if r.is_success:
        return r.json()
    try:
        err = r.json()["error"]
        raise ApiError(r.status_code, err["message"], err["type"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(r.status_code, r.text[:500]) from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def start_upload(http: httpx.Client, tenant: str, project: str, path: Path, chunk_size: int = CHUNK) -> str:
    """Declare ``path`` to the server; returns the upload's id."""
    decl = {
        "file_name": path.name,
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
        "chunk_size": chunk_size,
    }
    return str(_checked(http.post(f"{API}/tenants/{tenant}/projects/{project}/uploads", json=decl))["id"])


def upload_file(
    http: httpx.Client,
    tenant: str,
    project: str,
    path: Path,
    *,
    upload_id: str | None = None,
    chunk_size: int = CHUNK,
    retries: int = 5,
    on_chunk: Callable[[int, int], None] | None = None,
    complete_timeout: float | None = None,
    **import_options: Any,
) -> dict[str, Any]:
    """Upload ``path`` in chunks and import it as a dataset version; returns the version (JSON).

    Args:
        upload_id: resume this upload instead of starting one (only the missing chunks are sent).
        retries: how many times a broken connection is retried (after 1, 2, 4 ... seconds).
        on_chunk: called with (chunk number, chunk count) after each chunk the server acknowledged.
        complete_timeout: seconds to wait for the import (None: no limit; a large file takes minutes).
        import_options: ``name``, ``map``, ``format``, ``type``, ``text_unit``, ``on_error``.

    Raises:
        ApiError: the server refused (bad rows: the message names the file and line).
    """
    base = f"{API}/tenants/{tenant}/projects/{project}/uploads"
    upload_id = upload_id or start_upload(http, tenant, project, path, chunk_size)
    for attempt in range(retries + 1):
        try:
            state = _checked(http.get(f"{base}/{upload_id}"))
            size = state["chunk_size"]
            with path.open("rb") as f:
                for n in state["missing"]:
                    f.seek(n * size)
                    data = f.read(size)
                    headers = {"X-Chunk-SHA256": hashlib.sha256(data).hexdigest(),
                               "Content-Type": "application/octet-stream"}  # fmt: skip
                    _checked(http.put(f"{base}/{upload_id}/chunks/{n}", content=data, headers=headers))
                    if on_chunk:
                        on_chunk(n, state["chunks"])
            break
        except httpx.TransportError:
            if attempt == retries:
                raise
            time.sleep(2**attempt)
    r = http.post(f"{base}/{upload_id}/complete", json=import_options, timeout=complete_timeout)
    return dict(_checked(r))


def _params(**values: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items() if v is not None}


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str | None, Any]]:
    """(event, id, data as JSON) of each server-sent event."""
    event, event_id, data = "message", None, []
    for line in lines:
        if not line:
            if data:
                yield event, event_id, json.loads("\n".join(data))
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue  # keep-alive comment
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
    if data:
        yield event, event_id, json.loads("\n".join(data))
