"""Database engine, migrations and sessions."""

from __future__ import annotations

import ast
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from filelock import FileLock
from sqlalchemy import Engine, Select, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The key of the PostgreSQL advisory lock that serialises migrations (any fixed 64-bit number).
MIGRATION_LOCK_KEY = zlib.crc32(b"imts.store.db.migrate")
# SQLite connections kept open per process (see make_engine).
SQLITE_POOL = 48
PG_POOL = 20


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and foreign keys so it behaves like a real database."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Connections are opened lazily and kept: the API's thread pool (anyio's 40 threads) may hold
        # one each, and with SQLAlchemy's default of 5 kept the rest were opened and closed per request
        # (each open runs the pragmas below), which dominated a busy server's reads.
        engine = create_engine(url, connect_args={"timeout": 30}, pool_size=SQLITE_POOL, max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # Kept open as for SQLite (above), fewer: PostgreSQL's connections are server processes.
    return create_engine(url, pool_pre_ping=True, pool_size=PG_POOL, max_overflow=PG_POOL)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations recreate tables that others reference (SQLite cannot alter constraints):
            # with foreign keys on, the DROP of the old table fails on any existing row. The pragma is
            # ignored inside a transaction, so it is set before one starts; references are checked after.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if sqlite else []
                if dangling:
                    raise RuntimeError(f"the migration left rows pointing nowhere: {dangling[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def head_revisions() -> set[str]:
    """The newest revisions of ``migrations/versions``, read from the files' ``revision`` and
    ``down_revision`` assignments (no Alembic import: every job worker calls this at start)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                if "revision" in names:
                    revisions.add(ast.literal_eval(node.value))
                elif "down_revision" in names:
                    down = ast.literal_eval(node.value)
                    parents.update([down] if isinstance(down, str) else down or [])
    return revisions - parents


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the head revision already: one small query instead of Alembic's
    upgrade machinery (about 0.1 s of imports and script loading per process)."""
    try:
        with engine.connect() as conn:
            stamped = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError:  # no version table yet: a new database
        return False
    return stamped == head_revisions()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Held by one process at a time per database, while it checks and migrates the schema.

    Processes that open a new workspace at the same moment (a CI fan-out, a scripted pipeline) would
    otherwise all run the migrations at once and fail on each other's tables ("table alembic_version
    already exists"). SQLite: a lock file beside the database file; PostgreSQL: a session-level
    advisory lock, released when the block ends (or when the connection dies with its process).
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":  # private to this process: nothing to race
            yield
            return
        with FileLock(f"{url.database}.migrate.lock"):
            yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()


@lru_cache(maxsize=8)
def _factory(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    if not schema_is_current(engine):
        with migration_lock(engine):
            if not schema_is_current(engine):  # another process may have migrated while we waited
                migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


def session_factory(url: str) -> sessionmaker[Session]:
    """A session factory for ``url``, migrated on first use in this process."""
    return _factory(url)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    with session_factory(url)() as session, session.begin():
        yield session


def raw_rows(s: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    """``query``'s rows as plain tuples from the driver's own cursor, for reads of 100,000 rows where
    building SQLAlchemy rows would cost more than the database (a curve of a long run). Only for
    columns whose values the driver already returns as Python types (integers, floats, strings)."""
    compiled = query.compile(dialect=s.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    args: Any = [params[k] for k in compiled.positiontup or []] if compiled.positional else params
    cursor = s.connection().connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return cursor.fetchall()
    finally:
        cursor.close()
