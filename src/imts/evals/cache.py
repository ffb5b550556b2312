"""The generation cache: (model identity, item content, settings) -> the generated text.

A model's identity is its registry id where it has one (a model version's weights never change; a base
model carries the checksum taken when it was registered) and the content hash of its folder otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from imts.core.hashing import sha256_json, sha256_tree
from imts.registry.models import ResolvedModel
from imts.store.context import Context
from imts.store.models import BaseModelRecord, GenerationCache


def model_key(ctx: Context, model: ResolvedModel) -> str:
    if model.model_version_id:
        return f"version:{model.model_version_id}"
    if model.base_model_id:
        with ctx.session() as s:
            base = s.get(BaseModelRecord, model.base_model_id)
            if base is not None and base.checksum:
                return f"base:{base.checksum}"
    return f"tree:{sha256_tree(model.path)}"


def item_keys(mkey: str, prompts: Sequence[list[dict[str, str]]], settings: dict[str, Any]) -> list[str]:
    """One cache key per prompt: the same model, messages and settings always map to the same key."""
    skey = sha256_json(settings)
    return [sha256_json([mkey, sha256_json(p), skey]) for p in prompts]


def lookup(ctx: Context, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    with ctx.session() as s:
        for start in range(0, len(keys), 500):  # bounded IN lists
            chunk = list(keys[start : start + 500])
            for row in s.scalars(select(GenerationCache).where(GenerationCache.key.in_(chunk))):
                found[row.key] = (row.text, row.new_tokens)
    return found


def store(ctx: Context, mkey: str, entries: dict[str, tuple[str, int]]) -> None:
    if not entries:
        return
    with ctx.session() as s:
        existing = set(s.scalars(select(GenerationCache.key).where(GenerationCache.key.in_(list(entries)))))
        s.add_all(
            GenerationCache(key=k, model_key=mkey[:120], text=t, new_tokens=n)
            for k, (t, n) in entries.items()
            if k not in existing
        )
