"""Chunked, resumable uploads of a dataset file, kept on disk until they are imported.

An upload declares its file's name, size, SHA-256 and chunk size; chunks (any order, any number of
times) are written straight into the file at their offset while their hash is computed, so neither a
chunk nor the file is ever held in memory. A chunk counts as received only once its bytes are on disk
(fsync) and matched the hash its sender declared: a marker file ``chunks/<n>`` holding that hash. A
server killed mid-upload therefore keeps every chunk it acknowledged, and ``state`` tells the client
which ones to send again. ``complete`` checks the whole file's hash, then imports it through the same
path as ``imts data import`` (same file:line errors), and deletes the upload once the version is
committed; a failed import records nothing and keeps the upload, so it can be completed again with
other options (``on_error="skip"``, a field mapping) without sending the file again.

Layout, under the artifact store (``uploads/<project id>/<upload id>/``)::

    upload.json      the declaration, who started it, when, in which tenant and project
    file/<name>      the file, written chunk by chunk at each chunk's offset
    chunks/<n>       one marker per received chunk: its SHA-256
    completing       held (with the holder's pid) while a ``complete`` runs
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.data.readers import kind_of
from imts.store.context import Context

MIN_CHUNK = 64 << 10
READ_BLOCK = 1 << 20
_ID = re.compile(r"^upl_[0-9a-f]{18}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class UploadDeclaration(BaseModel):
    """What a client declares before sending the chunks of a file."""

    model_config = ConfigDict(frozen=True)

    file_name: str = Field(description="the file's name; its suffix picks the reader (.jsonl, .csv, ...)")
    size: int = Field(gt=0, description="the file's size in bytes")
    sha256: str = Field(description="SHA-256 of the whole file, hex")
    chunk_size: int = Field(description="bytes per chunk (the last may be shorter)")

    @field_validator("file_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", "..") or "\0" in value:
            raise ValueError("a plain file name, without folders")
        kind_of(value)  # an unsupported suffix is refused now, not after the whole file arrived
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _SHA.match(value.lower()):
            raise ValueError("64 hexadecimal digits")
        return value.lower()


class UploadView(BaseModel):
    """An upload in progress: which chunks the server holds, so a client resumes where it stopped."""

    model_config = ConfigDict(frozen=True)

    id: str
    file_name: str
    size: int
    sha256: str
    chunk_size: int
    chunks: int = Field(description="how many chunks the file has")
    received: list[int] = Field(description="the chunks the server holds, in order")
    missing: list[int] = Field(description="the chunks still to send, in order")
    bytes_received: int
    created_by: str
    created_at: datetime
    expires_at: datetime


class ChunkReceipt(BaseModel):
    """A chunk the server holds (written to disk and matching its hash)."""

    model_config = ConfigDict(frozen=True)

    upload_id: str
    chunk: int
    size: int
    sha256: str
    already_had: bool = Field(description="the same chunk had been received before (nothing written)")


class _Stored(UploadDeclaration):
    id: str
    tenant_id: str
    project_id: str
    created_by: str
    created_at: datetime

    @property
    def chunks(self) -> int:
        return -(-self.size // self.chunk_size)

    def chunk_len(self, n: int) -> int:
        return min(self.chunk_size, self.size - n * self.chunk_size)


def _root(ctx: Context) -> Path:
    return ctx.artifacts.path("uploads")


def _folder(ctx: Context, upload_id: str) -> Path:
    return _root(ctx) / ctx.project_id / upload_id


def _load(ctx: Context, upload_id: str) -> tuple[_Stored, Path]:
    """The upload ``upload_id`` of the context's project; ``NotFoundError`` if none, or expired."""
    folder = _folder(ctx, upload_id) if _ID.match(upload_id) else None
    if folder is None or not (folder / "upload.json").is_file():
        raise NotFoundError(f"no upload '{upload_id}'")
    up = _Stored.model_validate_json((folder / "upload.json").read_text())
    if up.tenant_id != ctx.tenant_id or _expired(ctx, up):
        raise NotFoundError(f"no upload '{upload_id}' (expired uploads are deleted)")
    return up, folder


def _expired(ctx: Context, up: _Stored, now: datetime | None = None) -> bool:
    return (now or datetime.now(UTC)) >= up.created_at + timedelta(hours=ctx.settings.upload_expiry_h)


def _received(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in (folder / "chunks").iterdir() if p.name.isdigit())


def _view(ctx: Context, up: _Stored, folder: Path) -> UploadView:
    got = _received(folder)
    have = set(got)
    return UploadView(
        **up.model_dump(
            include={"id", "file_name", "size", "sha256", "chunk_size", "created_by", "created_at"}
        ),
        chunks=up.chunks,
        received=got,
        missing=[n for n in range(up.chunks) if n not in have],
        bytes_received=sum(up.chunk_len(n) for n in got),
        expires_at=up.created_at + timedelta(hours=ctx.settings.upload_expiry_h),
    )


def create(ctx: Context, decl: UploadDeclaration) -> UploadView:
    """Start an upload in the context's project (and delete expired ones of every project)."""
    s = ctx.settings
    if decl.size > s.upload_max_bytes:
        raise InputError(f"the file is {decl.size} bytes; the limit is {s.upload_max_bytes}", field="size")
    if not MIN_CHUNK <= decl.chunk_size <= s.upload_max_chunk_bytes:
        raise InputError(
            f"chunk_size must be between {MIN_CHUNK} and {s.upload_max_chunk_bytes} bytes", field="chunk_size"
        )
    sweep_expired(ctx)
    root = _root(ctx)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if decl.size > free:
        raise ConflictError(f"the server has {free} bytes of free disk; the file needs {decl.size}")
    up = _Stored(
        **decl.model_dump(), id=new_id("upl"), tenant_id=ctx.tenant_id, project_id=ctx.project_id,
        created_by=ctx.principal, created_at=datetime.now(UTC),
    )  # fmt: skip
    folder = _folder(ctx, up.id)
    (folder / "chunks").mkdir(parents=True)
    (folder / "file").mkdir()
    (folder / "file" / up.file_name).touch()
    _write_atomically(folder / "upload.json", up.model_dump_json().encode())
    return _view(ctx, up, folder)


def state(ctx: Context, upload_id: str) -> UploadView:
    """Which chunks of ``upload_id`` the server holds and which are missing."""
    return _view(ctx, *_load(ctx, upload_id))


def cancel(ctx: Context, upload_id: str) -> UploadView:
    """Delete an upload and what it received."""
    up, folder = _load(ctx, upload_id)
    _busy_check(folder)
    view = _view(ctx, up, folder)
    shutil.rmtree(folder, ignore_errors=True)
    return view


class ChunkWriter:
    """Writes one chunk's bytes at its offset as they arrive, hashing them; ``finish`` checks the
    length and the hash, makes the bytes durable and only then marks the chunk received."""

    def __init__(self, ctx: Context, upload_id: str, n: int, sha256: str) -> None:
        self.up, self.folder = _load(ctx, upload_id)
        if not 0 <= n < self.up.chunks:
            raise InputError(f"chunk {n} is out of range: this upload has chunks 0 to {self.up.chunks - 1}",
                             field="n")  # fmt: skip
        if not _SHA.match(sha256.lower()):
            raise InputError("X-Chunk-SHA256 must be the chunk's SHA-256 (64 hexadecimal digits)",
                             field="X-Chunk-SHA256")  # fmt: skip
        _busy_check(self.folder)
        self.n, self.sha256 = n, sha256.lower()
        self.expected = self.up.chunk_len(n)
        self.marker = self.folder / "chunks" / str(n)
        self.already_had = self.marker.is_file() and self.marker.read_text() == self.sha256
        if self.marker.is_file() and not self.already_had:
            raise ConflictError(
                f"chunk {n} was already received with another SHA-256: cancel the upload to change the file"
            )
        self._hash = hashlib.sha256()
        self._written = 0
        self._fd = -1 if self.already_had else os.open(self.folder / "file" / self.up.file_name, os.O_WRONLY)

    def write(self, data: bytes) -> None:
        if self._written + len(data) > self.expected:
            self.close()
            raise InputError(f"chunk {self.n} must be {self.expected} bytes; more arrived", field="body")
        if self._fd >= 0:
            os.pwrite(self._fd, data, self.n * self.up.chunk_size + self._written)
        self._hash.update(data)
        self._written += len(data)

    def finish(self) -> ChunkReceipt:
        try:
            if self._written != self.expected:
                raise InputError(
                    f"chunk {self.n} must be {self.expected} bytes; {self._written} arrived", field="body"
                )
            if self._hash.hexdigest() != self.sha256:
                raise InputError(
                    f"chunk {self.n} does not match its X-Chunk-SHA256 (altered or broken in transit): "
                    "refused, send it again",
                    field="X-Chunk-SHA256",
                )
            if self._fd >= 0:
                os.fsync(self._fd)  # the bytes are on disk before the chunk is acknowledged
                _write_atomically(self.marker, self.sha256.encode())
        finally:
            self.close()
        return ChunkReceipt(upload_id=self.up.id, chunk=self.n, size=self._written, sha256=self.sha256,
                            already_had=self.already_had)  # fmt: skip

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_chunk(ctx: Context, upload_id: str, n: int, sha256: str) -> ChunkWriter:
    """A writer for chunk ``n`` of ``upload_id`` whose bytes should hash to ``sha256``."""
    return ChunkWriter(ctx, upload_id, n, sha256)


class Completing:
    """The complete file of an upload, verified and locked against a second ``complete``."""

    def __init__(self, ctx: Context, upload_id: str) -> None:
        self.ctx = ctx
        self.up, self.folder = _load(ctx, upload_id)
        self.path = self.folder / "file" / self.up.file_name

    def __enter__(self) -> Completing:
        _busy_check(self.folder)
        lock = self.folder / "completing"
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise ConflictError(f"upload '{self.up.id}' is being completed already") from None
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        missing = _view(self.ctx, self.up, self.folder).missing
        if missing:
            self._unlock()
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            raise ConflictError(f"upload '{self.up.id}' misses {len(missing)} chunks: {shown}")
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            while block := f.read(READ_BLOCK):
                digest.update(block)
        if digest.hexdigest() != self.up.sha256:
            # Every chunk matched its own hash, so the declaration or a chunk's sender was wrong: the
            # file cannot be trusted, and which chunk is wrong cannot be known. Start the chunks over.
            for marker in (self.folder / "chunks").iterdir():
                marker.unlink()
            self._unlock()
            raise InputError(
                f"the uploaded file's SHA-256 is {digest.hexdigest()}, not the declared {self.up.sha256}: "
                "every chunk was dropped, send them again",
                file=self.up.file_name,
            )
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            self._unlock()

    def _unlock(self) -> None:
        (self.folder / "completing").unlink(missing_ok=True)


def _busy_check(folder: Path) -> None:
    """Refuse a change while a live process completes the upload (a dead holder's lock is stale)."""
    lock = folder / "completing"
    try:
        pid = int(lock.read_text() or "0")
    except (FileNotFoundError, ValueError):
        return
    if pid and _alive(pid):
        raise ConflictError(f"upload '{folder.name}' is being completed")
    lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_expired(ctx: Context) -> int:
    """Delete the uploads of every project that expired (``upload_expiry_h``). Returns how many."""
    now, removed = datetime.now(UTC), 0
    for meta in _iter_meta(_root(ctx)):
        try:
            up = _Stored.model_validate_json(meta.read_text())
        except (OSError, ValueError):
            continue
        lock = meta.parent / "completing"
        if _expired(ctx, up, now) and not lock.exists():
            shutil.rmtree(meta.parent, ignore_errors=True)
            removed += 1
    return removed


def _iter_meta(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from root.glob("*/upl_*/upload.json")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
