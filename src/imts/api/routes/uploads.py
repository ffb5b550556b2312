"""Chunked, resumable uploads of dataset files (``imts.data.uploads``).

1. ``POST .../uploads`` declares the file (name, size, SHA-256, chunk size) and returns its id;
2. ``PUT .../uploads/{id}/chunks/{n}`` sends chunk ``n`` (body: its bytes; ``X-Chunk-SHA256``: their
   hash), in any order, again as often as needed: a chunk already held is acknowledged unchanged;
3. ``GET .../uploads/{id}`` says which chunks the server holds: after a broken connection, send the
   missing ones;
4. ``POST .../uploads/{id}/complete`` checks the whole file's hash and imports it as a dataset version.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from starlette.concurrency import run_in_threadpool

from imts.api.deps import project_ctx
from imts.api.routes.datasets import ImportOptions
from imts.core.permissions import Permission
from imts.data import service
from imts.data.service import UploadDeclaration, UploadView, VersionInfo
from imts.data.uploads import ChunkReceipt
from imts.services import offload
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}/uploads", tags=["uploads"])
Upload = Annotated[Context, Depends(project_ctx(Permission.DATASET_UPLOAD))]
CHUNK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("", response_model=UploadView, status_code=201)
def start(body: UploadDeclaration, ctx: Upload) -> UploadView:
    """Declare a file to upload in chunks; returns the upload's id and its chunk count."""
    return service.start_upload(ctx, body)


@router.get("/{upload_id}", response_model=UploadView)
def state(upload_id: str, ctx: Upload) -> UploadView:
    """Which chunks the server holds and which are missing (resume by sending the missing ones)."""
    return service.upload_state(ctx, upload_id)


@router.put("/{upload_id}/chunks/{n}", response_model=ChunkReceipt, openapi_extra=CHUNK_BODY)
async def put_chunk(
    upload_id: str,
    n: Annotated[int, Path(ge=0, description="the chunk's number, from 0")],
    request: Request,
    ctx: Upload,
    sha256: Annotated[str, Header(alias="X-Chunk-SHA256", description="SHA-256 of the chunk's bytes, hex")],
) -> ChunkReceipt:
    """Send chunk ``n``: written to disk as it arrives, kept only if it matches ``X-Chunk-SHA256``."""
    writer = service.upload_chunk(ctx, upload_id, n, sha256)
    try:
        async for piece in request.stream():
            writer.write(piece)
    except BaseException:
        writer.close()  # a dropped connection leaves the chunk unacknowledged, to be sent again
        raise
    return await run_in_threadpool(writer.finish)  # fsync: off the event loop


@router.post("/{upload_id}/complete", response_model=VersionInfo, status_code=201)
def complete(upload_id: str, body: ImportOptions, ctx: Upload) -> VersionInfo:
    """Check the whole file's SHA-256 and import it as a new dataset version (the CLI's file:line
    errors on a bad row; the upload is kept then, to complete again with other options)."""
    return offload.call(
        ctx, service.complete_upload, upload_id, body.name, map_=body.map, fmt=body.format,
        file_type=body.type, text_unit=body.text_unit, on_error=body.on_error,
    )  # fmt: skip


@router.delete("/{upload_id}", response_model=UploadView)
def cancel(upload_id: str, ctx: Upload) -> UploadView:
    """Cancel an upload and delete what it received."""
    return service.cancel_upload(ctx, upload_id)
