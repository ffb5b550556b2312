"""Real model-version rows for registry tests: a dataset version, a base model record, N versions."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.conftest import write_jsonl

from imts.data import service as data
from imts.registry import models
from imts.registry.views import ModelVersionView
from imts.store import runs
from imts.store.context import Context
from imts.store.models import BaseModelRecord


def versions(ctx: Context, tmp: Path, n: int, name: str = "tuned") -> list[ModelVersionView]:
    """``n`` versions of model ``name`` whose weights folders exist under the artifact store."""
    rows = [{"prompt": f"{i} + 1 = ?", "response": str(i + 1)} for i in range(4)]
    v = data.import_file(ctx, str(write_jsonl(tmp / f"rows-{name}.jsonl", rows)), f"{name}-data")
    bm_id = f"bm_{uuid.uuid4().hex[:12]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm_id, name=bm_id, path=str(tmp), architecture="Llama", num_params=1,
                              source="test", checksum="0" * 64))  # fmt: skip
    out = []
    for i in range(n):
        run = runs.create(ctx, "train", {"base_model": bm_id, "data": v.ref, "lr": 0.001 * (i + 1)})
        folder = ctx.artifacts.path(f"runs/{run.id}/merged")
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}", encoding="utf-8")
        mv = models.create_version(ctx, name, bm_id, run.id, v.id, None, folder, run.spec, {"loss": 1.0})
        runs.finish(ctx, run.id, "succeeded", {"final_loss": 1.0 - i / 10}, model_version_id=mv.id)
        out.append(mv)
    return out
