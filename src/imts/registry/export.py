"""Export a model version — the PEFT adapter, merged safetensors, or GGUF — and check each export by
loading it back: logits against the source (adapter, merged), tensors and a greedy decode (GGUF).

An export is written into a staging folder beside its destination and moved into place only after its
check passed, so a failed export leaves nothing behind. The source is the version loaded the one way
(``weights.load_version``): merged weights when they were saved, else base model + adapter.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from imts.core.errors import ImtsError, InputError, NotFoundError
from imts.registry import base_models, models
from imts.registry.views import ModelVersionView
from imts.registry.weights import load_version
from imts.store import audit
from imts.store.context import Context

Format = Literal["adapter", "merged", "gguf"]
FORMATS: tuple[Format, ...] = ("adapter", "merged", "gguf")
# English and Chinese: the check covers both scripts the platform serves.
PROBES = ["What is 12 + 7? Answer with a number.", "十二加七等于多少？"]
DECODE_TOKENS = 12


class ExportError(ImtsError):
    """An export did not load back as its source (nothing was left at the destination)."""


class ExportCheck(BaseModel):
    """How the loaded-back export compared with the source.

    Attributes:
        max_logit_diff: largest absolute difference of the next-token logits over the probe prompts.
        tensors: tensors compared (GGUF); max_tensor_diff: their largest absolute difference.
        decode_equal: a greedy decode of the probe gave the same tokens (GGUF, through its own
            tokenizer); decoded: that decode.
    """

    probes: list[str]
    max_logit_diff: float | None = None
    tensors: int = 0
    max_tensor_diff: float | None = None
    decode_equal: bool | None = None
    decoded: str | None = None
    tolerance: float


class ExportResult(BaseModel):
    """Where an export was written, what it holds, and its check."""

    version: str
    format: Format
    path: Path
    files: list[str]
    bytes: int
    check: ExportCheck


def export(
    ctx: Context, ref: str, fmt: str, dest: Path | None = None, gguf_type: str = "f32"
) -> ExportResult:
    """Export model version ``ref`` as ``fmt`` into ``dest`` (default ``exports/<name>-<N>/<fmt>``).

    Raises:
        InputError: unknown format, GGUF type, or an existing destination.
        ExportError: the export did not load back as the source.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}' (one of: {', '.join(FORMATS)})", field="format")
    if gguf_type not in ("f32", "f16"):
        raise InputError(f"unknown GGUF type '{gguf_type}' (f32 or f16)", field="gguf_type")
    mv = models.get_version(ctx, ref)
    dest = (dest or ctx.artifacts.path(f"exports/{mv.name}-{mv.version}/{fmt}")).expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} exists and is not empty: choose another destination", field="out")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        if fmt == "adapter":
            check = _adapter(ctx, mv, staging)
        elif fmt == "merged":
            check = _merged(ctx, mv, staging)
        else:
            check = _gguf(ctx, mv, staging, gguf_type)
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    with ctx.session() as s:
        after = {"format": fmt, "path": str(dest), "check": check.model_dump()}
        audit.record(ctx, s, "model.export", ("model_version", mv.id), None, after)
    return ExportResult(version=mv.label, format=fmt, path=dest, files=files, bytes=size, check=check)  # type: ignore[arg-type]


@dataclass
class Download:
    """An export as one tar stream: its name, its exact length, and its blocks."""

    file_name: str
    size: int
    blocks: Iterator[bytes]


def download(ctx: Context, ref: str, fmt: str) -> Download:
    """Version ``ref``'s ``fmt`` export (made by ``export`` into its default place) as an uncompressed
    tar (weights do not compress), streamed file by file in 1 MiB blocks: memory stays flat for a
    multi-GB merged model, and the length is known before the first byte (a browser shows progress).

    Raises:
        NotFoundError: no such version, or it has no ``fmt`` export yet.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}' (one of: {', '.join(FORMATS)})", field="format")
    mv = models.get_version(ctx, ref)
    folder = ctx.artifacts.path(f"exports/{mv.name}-{mv.version}/{fmt}")
    if not folder.is_dir():
        raise NotFoundError(f"{mv.label} has no {fmt} export yet: export it first (imts models export)")
    prefix = f"{mv.name}-{mv.version}-{fmt}"
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = tarfile.TarInfo(f"{prefix}/{path.relative_to(folder)}")
        info.size, info.mtime, info.mode = path.stat().st_size, int(path.stat().st_mtime), 0o644
        entries.append((path, info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), info.size))
    size = sum(len(header) + -(-n // 512) * 512 for _, header, n in entries) + 1024

    def blocks() -> Iterator[bytes]:
        for path, header, n in entries:
            yield header
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk
            if n % 512:
                yield b"\0" * (512 - n % 512)  # a member's data fills whole 512-byte records
        yield b"\0" * 1024  # the end of the archive: two empty records

    return Download(f"{prefix}.tar", size, blocks())


# --- the three formats -------------------------------------------------------------------------------


def _adapter(ctx: Context, mv: ModelVersionView, out: Path) -> ExportCheck:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if not mv.adapter_path or not Path(mv.adapter_path).is_dir():
        raise InputError(
            f"model {mv.label} has no adapter (a full fine-tune): export it as 'merged' or 'gguf'",
            field="format",
        )
    src = Path(mv.adapter_path)
    for p in src.iterdir():  # the adapter, its config, the tokenizer and the run's spec
        if p.is_file():
            shutil.copy2(p, out / p.name)
    model, tokenizer = load_version(ctx, mv)
    base_path = base_models.get(ctx, mv.base_model_id).path
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    back = PeftModel.from_pretrained(base, out).eval()
    return _logit_check(model, back, tokenizer, tolerance=1e-4, what=f"adapter export of {mv.label}")


def _merged(ctx: Context, mv: ModelVersionView, out: Path) -> ExportCheck:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    source, tokenizer = load_version(ctx, mv)
    model, _ = load_version(ctx, mv, merge=True)
    model.config.use_cache = True
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)  # includes the chat template
    card = Path(mv.merged_path or mv.adapter_path or "") / "README.md"
    if card.is_file():  # the model card (`imts models card`)
        shutil.copy2(card, out / "README.md")
    gen = _generation_config(model, tokenizer, GenerationConfig)
    gen.save_pretrained(out)
    config = _inference_config(ctx, mv, model, tokenizer, gen)
    (out / "inference_config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    back = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    return _logit_check(source, back, tokenizer, tolerance=1e-4, what=f"merged export of {mv.label}")


def _gguf(ctx: Context, mv: ModelVersionView, out: Path, gguf_type: str) -> ExportCheck:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = load_version(ctx, mv, merge=True)
    if model.config.model_type != "llama":
        raise InputError(
            f"GGUF export writes Llama-architecture models; {mv.label} is '{model.config.model_type}'",
            field="format",
        )
    name = f"{mv.name}-{mv.version}.{gguf_type}.gguf"
    write_gguf(model, tokenizer, out / name, mv.label, gguf_type)
    back = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32).eval()
    back_tok = AutoTokenizer.from_pretrained(out, gguf_file=name)
    ours = model.state_dict()
    theirs = back.state_dict()
    missing = sorted(set(ours) - set(theirs))
    if missing:
        raise ExportError(f"GGUF export of {mv.label} lost tensors: {', '.join(missing[:5])}")
    diff = max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in ours)
    tolerance = 0.0 if gguf_type == "f32" else 1e-2
    if diff > tolerance:
        raise ExportError(
            f"GGUF export of {mv.label}: tensors differ from the source by {diff:.3g} (> {tolerance})"
        )
    prompt = _probe_ids(tokenizer, PROBES[0])
    if _probe_ids(back_tok, PROBES[0]) != prompt:
        raise ExportError(f"GGUF export of {mv.label}: its tokenizer encodes the probe differently")
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        kw: dict[str, Any] = {"max_new_tokens": DECODE_TOKENS, "do_sample": False}
        a = model.generate(ids, pad_token_id=tokenizer.pad_token_id, **kw)[0, len(prompt) :].tolist()
        b = back.generate(ids, pad_token_id=back_tok.pad_token_id, **kw)[0, len(prompt) :].tolist()
    text_a = tokenizer.decode(a, skip_special_tokens=True)
    text_b = back_tok.decode(b, skip_special_tokens=True)
    if a != b or text_a != text_b:
        raise ExportError(f"GGUF export of {mv.label}: greedy decode differs ({text_a!r} vs {text_b!r})")
    return ExportCheck(
        probes=PROBES[:1], tensors=len(ours), max_tensor_diff=diff, decode_equal=True, decoded=text_b,
        tolerance=tolerance,
    )  # fmt: skip


# --- GGUF writing --------------------------------------------------------------------------------------


def write_gguf(model: Any, tokenizer: Any, path: Path, name: str, gguf_type: str = "f32") -> None:
    """Write a Llama-architecture transformers model and its BPE tokenizer as one GGUF file, through
    the ``gguf`` package's writer (the layout llama.cpp's converter writes)."""
    import gguf
    import numpy as np

    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or _rope_theta(cfg)))
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    f16 = gguf_type == "f16"
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(w, tokenizer, cfg.vocab_size)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # llama.cpp reads the tied output from token_embd
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, cfg.num_attention_heads, cfg.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, cfg.num_attention_heads, cfg.num_key_value_heads)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise InputError(f"no GGUF name for tensor '{hf_name}'", field="format")
        # Like llama.cpp's converter: norms (1-D) stay float32 whatever the file type.
        w.add_tensor(gguf_name, data.astype(np.float16) if f16 and data.ndim > 1 else data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _rope_theta(cfg: Any) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    return float(params.get("rope_theta", 10000.0))


def _permute(weights: Any, n_head: int, n_head_kv: int) -> Any:
    """HF's rotary layout (halves) to GGUF's (interleaved pairs): llama.cpp's ``LlamaModel.permute``."""
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _add_tokenizer(w: Any, tokenizer: Any, vocab_size: int) -> None:
    import gguf

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    if state["model"]["type"] != "BPE":
        kind = state["model"]["type"]
        raise InputError(f"GGUF export writes BPE tokenizers; this one is {kind}", field="format")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    special = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    added = {t.content for t in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(vocab_size):
        tok = by_id.get(i, f"[PAD{i}]")
        tokens.append(tok)
        if i not in by_id:
            types.append(gguf.TokenType.UNUSED)
        elif tok in special:
            types.append(gguf.TokenType.CONTROL)
        elif tok in added:
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for setter, token_id in (
        (w.add_bos_token_id, tokenizer.bos_token_id),
        (w.add_eos_token_id, tokenizer.eos_token_id),
        (w.add_unk_token_id, tokenizer.unk_token_id),
        (w.add_pad_token_id, tokenizer.pad_token_id),
    ):
        if token_id is not None:
            setter(token_id)
    w.add_add_bos_token(False)
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)


# --- checks and configs --------------------------------------------------------------------------------


def _probe_ids(tokenizer: Any, text: str) -> list[int]:
    messages = [{"role": "user", "content": text}]
    if tokenizer.chat_template:
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(out if isinstance(out, list) else out["input_ids"])
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _logit_check(source: Any, back: Any, tokenizer: Any, tolerance: float, what: str) -> ExportCheck:
    import torch

    worst = 0.0
    with torch.inference_mode():
        for probe in PROBES:
            ids = torch.tensor([_probe_ids(tokenizer, probe)])
            a, b = source(ids).logits, back(ids).logits
            worst = max(worst, float((a - b).abs().max()))
    if worst > tolerance:
        raise ExportError(f"{what}: logits differ from the source by {worst:.3g} (> {tolerance})")
    return ExportCheck(probes=PROBES, max_logit_diff=worst, tolerance=tolerance)


def _generation_config(model: Any, tokenizer: Any, cls: Any) -> Any:
    gen = cls.from_model_config(model.config)
    gen.eos_token_id = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    gen.pad_token_id = pad if pad is not None else tokenizer.eos_token_id
    gen.do_sample, gen.max_new_tokens = False, 256
    return gen


def _inference_config(
    ctx: Context, mv: ModelVersionView, model: Any, tokenizer: Any, gen: Any
) -> dict[str, Any]:
    """What a server needs to serve the folder as the version was trained and evaluated."""
    spec = mv.spec
    return {
        "model": mv.label,
        "model_version_id": mv.id,
        "base_model": base_models.get(ctx, mv.base_model_id).name,
        "architecture": (model.config.architectures or [type(model).__name__])[0],
        "dtype": "float32",
        "context_length": getattr(model.config, "max_position_embeddings", None),
        "max_seq_len_trained": spec.get("max_seq_len"),
        "prompt_format": "chat_template" if tokenizer.chat_template else "plain",
        "system_prompt": spec.get("system_prompt"),
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "generation": {"do_sample": gen.do_sample, "max_new_tokens": gen.max_new_tokens},
        "load": {"transformers": "AutoModelForCausalLM.from_pretrained(folder)", "vllm": "vllm serve folder"},
    }
