"""Training recipes, one module per method, each read top to bottom; ``RECIPES`` maps a run spec's
``method`` to its recipe. Recipes need no database: the service (``train/service.py``) records runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from imts.core.progress import Progress
from imts.store.tracking import Sink
from imts.train.loop import TrainResult
from imts.train.recipes import dpo, sft_full, sft_lora
from imts.train.spec import RunSpec


class Recipe(Protocol):
    def __call__(
        self,
        spec: RunSpec,
        base_path: Path,
        train_rows: list[dict[str, Any]],
        val_rows: list[dict[str, Any]],
        out_dir: Path,
        sink: Sink,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainResult: ...


RECIPES: dict[str, Recipe] = {"sft_lora": sft_lora.run, "sft_full": sft_full.run, "dpo": dpo.run}
