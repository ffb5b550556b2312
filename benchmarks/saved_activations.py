"""Activation memory check: the bytes autograd keeps per token per decoder layer, counted, against the
planner's formula (``imts.train.plan.memory.activation_bytes_per_token_layer``).

For each regime (precision x method; QLoRA where CUDA and bitsandbytes are present) the recipe's model
is loaded as the recipe loads it (``imts.train.loop.load_model``), and one forward pass of its loss
(``loop.response_loss_sum``) runs on the longest examples under ``torch.autograd.graph
.saved_tensors_hooks``, which sees every tensor autograd saves for the backward pass. Tensors are
counted once per storage, by dtype and last dimension (so the hidden-size, MLP-width and head-size
tensors show apart). The decoder layers' share, divided by tokens and layers, is compared with the
formula for the same workload.

    python benchmarks/saved_activations.py                      # the SmolLM2 model cache, CPU regimes
    python benchmarks/saved_activations.py --model DIR --random-init --rows-file rows.jsonl  # GPU box
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import DEFAULT_MODEL, build_rows, make_random_model, read_rows

REGIMES = (
    ("fp32", "sft_lora", "none"),
    ("fp32", "sft_full", "none"),
    ("bf16", "sft_lora", "none"),
    ("bf16", "sft_full", "none"),
    ("bf16", "sft_lora", "nf4"),
)


def count(
    precision: str, method: str, quantization: str, model_path: Path, rows: list[dict[str, Any]], batch: int
) -> dict[str, Any]:
    from imts.train import loop
    from imts.train.data import collate
    from imts.train.plan.arch import from_config
    from imts.train.plan.memory import Workload, activation_bytes_per_token_layer
    from imts.train.spec import RunSpec

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = RunSpec(base_model="m", data="d", precision=precision, method=method, quantization=quantization)
    model, tok, pad = loop.load_model(spec, model_path, device)
    train, _, _ = loop.sft_examples(tok, rows, [], spec)
    longest = sorted(train, key=lambda e: len(e.input_ids))[-batch:]
    b = {k: v.to(device) for k, v in collate(longest, pad).items()}
    n, s = b["input_ids"].shape

    seen: dict[tuple[int, torch.dtype], tuple[int, str, int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.dtype)
        seen.setdefault(
            key,
            (
                t.untyped_storage().nbytes(),
                str(t.dtype).removeprefix("torch."),
                t.shape[-1] if t.dim() else 0,
            ),
        )
        return t

    body, _ = loop.backbone_and_head(model)
    with loop.autocast(precision, device), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        body(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    groups: Counter[str] = Counter()
    for nbytes, dtype, last in seen.values():
        groups[f"{dtype}[{last}]"] += nbytes
    cfg = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    scale = n * s * cfg.num_hidden_layers  # token-layers
    per_token_layer = sum(groups.values()) / scale
    formula = activation_bytes_per_token_layer(Workload.of_run(spec, from_config(model_path), n, s))
    return {
        "regime": f"{precision} {method}" + (" nf4" if quantization == "nf4" else ""),
        "device": device.type,
        "batch": [n, s],
        "measured_bytes_per_token_layer": round(per_token_layer),
        "formula_bytes_per_token_layer": round(formula),
        "formula_over_measured": round(formula / per_token_layer, 3),
        "by_dtype_and_last_dim": {k: round(v / scale) for k, v in groups.most_common(10)},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--random-init", action="store_true", help="--model config + tokenizer, random weights")
    p.add_argument("--rows-file", type=Path, default=None)
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="the longest examples, one batch")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--regime", type=int, default=None, help=argparse.SUPPRESS)  # one regime, in a child
    args = p.parse_args()
    if args.regime is not None:
        rows = read_rows(args.rows_file, args.rows) if args.rows_file else build_rows(args.rows, 0)
        print(json.dumps(count(*REGIMES[args.regime], args.model, rows, args.batch)), flush=True)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="saved-acts-") as tmp:
        model_path = make_random_model(args.model, Path(tmp), 0) if args.random_init else args.model
        for i, (_, _, quantization) in enumerate(REGIMES):
            if quantization == "nf4" and not torch.cuda.is_available():
                continue
            # Each regime in a fresh process: nothing of the previous model or graph is left around.
            argv = [sys.executable, __file__, "--model", str(model_path), "--regime", str(i)]
            argv += ["--rows", str(args.rows), "--batch", str(args.batch)]
            argv += ["--rows-file", str(args.rows_file)] if args.rows_file else []
            done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
