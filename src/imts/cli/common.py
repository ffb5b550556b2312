"""Shared CLI plumbing: the console, the workspace, and turning user errors into clean messages."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from imts.core.errors import ImtsError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
# --tenant / --project of this invocation (None: the settings' IMTS_TENANT / IMTS_PROJECT)
SCOPE: dict[str, str | None] = {"tenant": None, "project": None}


def context() -> Any:
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
        try:
            return fn(*args, **kwargs)
        except ImtsError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
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

    return wrapper  # type: ignore[return-value]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
