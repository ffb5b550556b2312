"""Reading typed specs the way users give them: a YAML mapping plus ``KEY=VALUE`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from imts.core.errors import InputError


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """The YAML mapping in ``path``; errors name the file and ``what`` it should hold."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read {what}: {exc}", file=str(path)) from exc
    if not isinstance(loaded, dict):
        raise InputError(f"a {what} must be a YAML mapping", file=str(path))
    return loaded


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b=value`` items into ``data`` (dotted keys nest; values parsed as YAML scalars)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"override '{item}' is not KEY=VALUE")
        target = data
        *parents, leaf = key.strip().split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = yaml.safe_load(value)
    return data
