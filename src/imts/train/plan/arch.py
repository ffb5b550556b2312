"""Model architectures for memory planning: a built-in table of known configs, or a model's config.json.

Parameter counts are computed from the tensor shapes (not copied from model cards), so the same
arithmetic serves every decoder of the Llama family (Llama, Mistral, Qwen2, SmolLM2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imts.core.errors import InputError, NotFoundError

# Linear layers a LoRA adapter can target, by name (the Hugging Face Llama/Qwen2/Mistral names).
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Arch:
    """Shapes of a Llama-family decoder (GQA attention, SwiGLU MLP, RMSNorm)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    head_dim: int | None = None
    qkv_bias: bool = False  # Qwen2 has biases on q/k/v

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear layer of one decoder layer."""
        h, q, kv, i = self.hidden, self.heads * self.hd, self.kv_heads * self.hd, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def layer_linear_params(self) -> int:
        """Weights of the linear layers of one decoder layer (what 4-bit quantisation applies to)."""
        return sum(a * b for a, b in self.linear_shapes().values())

    def layer_params(self) -> int:
        bias = (self.heads + 2 * self.kv_heads) * self.hd if self.qkv_bias else 0
        return self.layer_linear_params() + bias + 2 * self.hidden  # + two RMSNorm weights

    def embedding_params(self) -> int:
        """Input embedding plus the LM head when it is not tied to it."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def params(self) -> int:
        """Total parameters: embeddings, decoder layers, final norm."""
        return self.embedding_params() + self.layers * self.layer_params() + self.hidden

    def lora_params(self, rank: int, targets: list[str] | tuple[str, ...]) -> int:
        """Trainable parameters of LoRA adapters (A: in x r, B: r x out) on the targeted linears."""
        shapes = self.linear_shapes()
        unknown = [t for t in targets if t not in shapes]
        if unknown:
            raise InputError(f"unknown LoRA target modules {unknown}; known: {', '.join(LINEAR_NAMES)}")
        return self.layers * sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets)


def _a(name: str, h: int, n: int, a: int, kv: int, i: int, v: int, tied: bool, bias: bool = False) -> Arch:
    return Arch(name, h, n, a, kv, i, v, tied, qkv_bias=bias)


# Published configs (config.json of each model on its official repository).
KNOWN: dict[str, Arch] = {
    a.name: a
    for a in (
        _a("llama-3-8b", 4096, 32, 32, 8, 14336, 128256, False),
        _a("llama-3-70b", 8192, 80, 64, 8, 28672, 128256, False),
        _a("llama-3.1-405b", 16384, 126, 128, 8, 53248, 128256, False),
        _a("qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, False, bias=True),
        _a("qwen2.5-14b", 5120, 48, 40, 8, 13824, 152064, False, bias=True),
        _a("qwen2.5-72b", 8192, 80, 64, 8, 29568, 152064, False, bias=True),
        _a("mistral-7b", 4096, 32, 32, 8, 14336, 32000, False),
        _a("smollm2-135m", 576, 30, 9, 3, 1536, 49152, True),
        _a("smollm2-360m", 960, 32, 15, 5, 2560, 49152, True),
        _a("smollm2-1.7b", 2048, 24, 32, 32, 8192, 49152, True),
    )
}


def from_config(path: Path, name: str | None = None) -> Arch:
    """Read the shapes from a Hugging Face ``config.json`` (or the folder holding it)."""
    file = path / "config.json" if path.is_dir() else path
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 or not JSON
        raise InputError(f"cannot read model config: {exc}", file=str(file)) from None
    if not isinstance(cfg, dict):
        raise InputError("not a model config: expected a JSON object", file=str(file))
    try:
        heads = int(cfg["num_attention_heads"])
        return Arch(
            name=name or file.parent.name,
            hidden=int(cfg["hidden_size"]),
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            intermediate=int(cfg["intermediate_size"]),
            vocab=int(cfg["vocab_size"]),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            head_dim=cfg.get("head_dim"),
            qkv_bias=bool(cfg.get("attention_bias", False)) or cfg.get("model_type") == "qwen2",
        )
    except KeyError as exc:
        raise InputError(f"not a Llama-family decoder config: missing {exc}", file=str(file)) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"not a Llama-family decoder config: {exc}", file=str(file)) from None


def lookup(name: str, model_dirs: list[Path] | None = None) -> Arch:
    """A known config by name (case-insensitive), a folder or config.json path, or a model folder in
    ``model_dirs`` (the registered base models' paths)."""
    key = name.lower()
    if key in KNOWN:
        return KNOWN[key]
    for folder in model_dirs or []:
        if folder.name.lower() == key and (folder / "config.json").is_file():
            return from_config(folder, name)
    path = Path(name).expanduser()
    if path.exists():
        return from_config(path)
    raise NotFoundError(
        f"unknown model '{name}': give a registered base model, a model folder, or one of "
        f"{', '.join(sorted(KNOWN))}"
    )
