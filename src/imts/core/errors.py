"""Errors that reach users. Each says what went wrong and where (file, line, field)."""

from __future__ import annotations

from typing import Any


class ImtsError(Exception):
    """Base class of errors meant for users; the CLI prints them without a traceback."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The same error, fields included, from another process (the server's offload processes).
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[ImtsError], args: tuple[Any, ...], state: dict[str, Any]) -> ImtsError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class NotFoundError(ImtsError):
    """A named thing (dataset, version, model, run) does not exist.

    Args:
        message: what was not found, in words.
        field: the input field that named it, when there is one (the API's error ``param``).
    """

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ConflictError(ImtsError):
    """A name is already taken or an operation contradicts the current state."""


class ModelLoadError(ImtsError):
    """A model path or package does not hold a usable model."""


class InputError(ImtsError):
    """Bad user input, located as precisely as possible.

    Args:
        reason: what is wrong, in words.
        file: the input file, if the input came from one.
        line: 1-based line number in that file.
        field: the offending field or key.
    """

    def __init__(
        self, reason: str, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.located())

    def located(self) -> str:
        where = []
        if self.file:
            where.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class Interrupted(Exception):
    """A long operation stopped at a safe point because it was asked to (a checkpoint was saved)."""

    def __init__(self, step: int | None = None, status: str = "preempted") -> None:
        self.step = step
        self.status = status  # what the interrupted run becomes: preempted, or cancelled by its user
        super().__init__(f"stopped at step {step}" if step is not None else "stopped")


class PermissionDeniedError(ImtsError):
    """The caller belongs to the tenant but its role lacks the permission for this action."""


class AuthenticationError(ImtsError):
    """No valid credentials: a missing, wrong, expired or revoked key or session."""
