"""Shared CLI plumbing: the console, the workspace, and turning user errors into clean messages."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

import click
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from imts.core.errors import ImtsError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
# --tenant / --project of this invocation (None: the settings' IMTS_TENANT / IMTS_PROJECT)
SCOPE: dict[str, str | None] = {"tenant": None, "project": None}
# --server of this invocation (None: the settings' IMTS_SERVER; neither: act on the local database)
REMOTE: dict[str, str | None] = {"server": None}
# the command functions ``friendly`` is running, and the `imts` app (cli/main.py) whose tree names them
RUNNING: list[Callable[..., Any]] = []
ROOT: list[typer.Typer] = []


# The verbs that act on a server with --server / IMTS_SERVER (cli/backend/); every other command acts
# only on this machine's workspace and refuses while a server is set (``context``).
REMOTE_VERBS = (
    "tenants, projects, users, members, keys, audit, webhooks; "
    "jobs submit/list/show/logs [-f]/pause/resume/cancel/retry/delete; "
    "data import/query/list/show/preview/stats/split/dedup/diff/rollback/lineage/share/export/embed/"
    "analyze/analysis/fix/pii-scan/review list/accept/reject/commit; "
    "runs list/show/compare; "
    "models list/show/pull/alias/unalias/alias-history/protect/tag/archive/delete/export/compare/card; "
    "train; eval; report; deploy add/list/remove; pool show/costs/quota; "
    "loop start/status/list/log/report/stop/resume/approve"
)


def server_url() -> str | None:
    """The server this invocation acts on (--server, else IMTS_SERVER), or None: the local database."""
    from imts.core.settings import get_settings

    return REMOTE["server"] or get_settings().server


def _command_name() -> str:
    """``imts data merge`` for the command ``friendly`` is running, found in the app's command tree."""
    target = RUNNING[-1] if RUNNING else None

    def walk(t: typer.Typer, path: list[str]) -> list[str] | None:
        for c in t.registered_commands:
            if c.callback is not None and getattr(c.callback, "__wrapped__", c.callback) is target:
                return [*path, c.name or c.callback.__name__.replace("_", "-")]
        for g in t.registered_groups:
            if g.typer_instance is not None and (found := walk(g.typer_instance, [*path, g.name or ""])):
                return found
        return None

    found = next((path for app in ROOT if (path := walk(app, []))), None)
    return " ".join(["imts", *(found or ["(this command)"])])


def context() -> Any:
    """The context of a command that acts on this machine's workspace only.

    Raises:
        InputError: a server is set (--server or IMTS_SERVER): this command would act on the local
            workspace instead of the server, so it refuses and says what works remotely.
    """
    server = server_url()
    if server:
        from imts.core.errors import InputError

        raise InputError(
            f"`{_command_name()}` acts only on this machine's workspace, not on the server {server}: "
            f"run it without --server (unset IMTS_SERVER). Remote verbs: {REMOTE_VERBS}."
        )
    return machine_context()


def machine_context() -> Any:
    """This machine's workspace context, whether or not a server is set: for the commands that are about
    this machine (``imts server``, ``imts admin init``) and the local backend."""
    from imts.core.logging import configure
    from imts.core.settings import get_settings
    from imts.services.startup import local_context

    settings = get_settings()
    configure("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)
    # Our own bars show progress; transformers' per-load bars and deprecation notices are noise here
    # (set before transformers is imported, which commands do lazily).
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    scope = {k: v for k, v in SCOPE.items() if v}
    return local_context(settings.model_copy(update=scope) if scope else settings)


def backend() -> Any:
    """Where this command acts (``cli/backend/``): the server named by ``--server`` / IMTS_SERVER,
    with IMTS_API_KEY, or else the local database."""
    from imts.core.errors import InputError
    from imts.core.settings import get_settings

    settings = get_settings()
    server = server_url()
    if server:
        from imts.api.client import ApiClient

        if settings.api_key is None:
            raise InputError(
                f"set IMTS_API_KEY to an API key of {server} (imts keys create)", field="IMTS_API_KEY"
            )
        return ApiClient(server, settings.api_key.get_secret_value())
    from imts.cli.backend import LocalBackend

    return LocalBackend(machine_context())


def scope() -> tuple[str, str]:
    """The (tenant, project) this invocation acts in: --tenant / --project, else IMTS_TENANT /
    IMTS_PROJECT."""
    from imts.core.settings import get_settings

    settings = get_settings()
    return SCOPE["tenant"] or settings.tenant, SCOPE["project"] or settings.project


def progress() -> Any:
    from imts.core.progress import RichProgress

    return RichProgress(console)


def friendly(fn: F) -> F:
    """Print ImtsError as one red line (exit code 2) instead of a traceback.

    Any other exception is a bug in IMTS (bad input must raise ImtsError): it is printed as one line
    too, with exit code 1, unless IMTS_LOG_LEVEL=DEBUG asks for the traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        RUNNING.append(fn)
        try:
            return fn(*args, **kwargs)
        except ImtsError as exc:
            # soft_wrap: the terminal folds a long line, rich does not break it, so ids and commands
            # in the message copy whole.
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, click.ClickException):
            raise  # a command's own exit code, or click's usage error: already said
        except Exception as exc:
            from imts.core.settings import get_settings

            if get_settings().log_level.upper() == "DEBUG":
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
                "This is a bug in IMTS / 这是 IMTS 的缺陷: please report it; IMTS_LOG_LEVEL=DEBUG shows "
                "the traceback.",
                markup=True,
                highlight=False,
            )
            raise typer.Exit(1) from None
        finally:
            RUNNING.pop()

    return wrapper  # type: ignore[return-value]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


JSON_HELP = "Print JSON (every field, whole ids) instead of a table."


def print_views(views: Iterable[BaseModel] | dict[str, Iterable[BaseModel]]) -> None:
    """Read models as JSON: a list, or named lists."""
    if isinstance(views, dict):
        print_json({k: [v.model_dump(mode="json") for v in vs] for k, vs in views.items()})
    else:
        print_json([v.model_dump(mode="json") for v in views])


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    ids: Collection[str] = (),
    title: str | None = None,
) -> Table:
    """A table whose ``ids`` columns are never shortened or broken, however narrow the terminal (an id
    is there to be copied); other cells fold onto more lines instead of losing their end."""
    body = [list(r) for r in rows]
    t = Table(title=title)
    for i, col in enumerate(columns):
        if col in ids:
            t.add_column(col, no_wrap=True, min_width=max([len(col), *(len(r[i]) for r in body)]))
        else:
            t.add_column(col, overflow="fold")
    for r in body:
        t.add_row(*r)
    return t
