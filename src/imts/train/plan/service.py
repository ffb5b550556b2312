"""``imts plan`` as a service: resolve the model and the hardware, estimate every option, choose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imts.core.errors import InputError, NotFoundError
from imts.core.hardware import cpu_native_bf16
from imts.store.context import Context
from imts.train.plan.arch import KNOWN, LINEAR_NAMES, Arch, from_config, lookup
from imts.train.plan.memory import GiB, Method, Precision, Workload, parse_hardware
from imts.train.plan.recommend import Plan, recommend


def resolve_arch(name: str, ctx: Context | None = None) -> Arch:
    """A known config, else a registered base model's config.json, else a folder/config.json path."""
    if name.lower() in KNOWN:
        return KNOWN[name.lower()]
    if ctx is not None:
        from imts.registry import base_models

        try:
            rec = base_models.get(ctx, name)
        except NotFoundError:
            pass
        else:
            return from_config(Path(rec.path), rec.name)
    return lookup(name)


def make_plan(
    arch: Arch,
    gpus: str,
    method: Method | None = None,
    batch: int = 1,
    seq: int = 4096,
    precision: Precision = "bf16",
    nodes: int = 1,
    lora_rank: int = 16,
    lora_targets: tuple[str, ...] = LINEAR_NAMES,
    loss_fraction: float = 1.0,
) -> Plan:
    """Estimate every option for ``method`` (all methods when None) on ``gpus`` and recommend one.

    On ``gpus="cpu"`` the precision is what ``precision=auto`` trains in on this machine's CPU (bf16
    with AVX512-BF16 or AMX, else fp32) and QLoRA is left out (bitsandbytes 4-bit needs CUDA).
    """
    if batch < 1 or seq < 1:
        raise InputError("batch and sequence length must be >= 1")
    if not 0 < loss_fraction <= 1:
        raise InputError("loss_fraction must be in (0, 1]")
    hw = parse_hardware(gpus, nodes)
    if hw.device.kind == "cpu":
        if method == "qlora":
            raise InputError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); on the CPU use lora or full")
        precision = "bf16" if cpu_native_bf16() else "fp32"
    methods: list[Method] = [method] if method else ["full", "lora", "qlora"]
    if hw.device.kind == "cpu":
        methods = [m for m in methods if m != "qlora"]
    workloads = [
        Workload(arch, m, batch, seq, precision, lora_rank, tuple(lora_targets), loss_fraction)
        for m in methods
    ]
    return recommend(workloads, hw)


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain data (for ``--json`` and the API): sizes in GiB."""

    def gib(x: float) -> float:
        return round(x / GiB, 3)

    w0 = plan.workloads[0]
    return {
        "model": w0.arch.name,
        "params": w0.arch.params(),
        "hardware": str(plan.hardware),
        "usable_gib_per_device": gib(plan.hardware.device.usable),
        "micro_batch": w0.micro_batch,
        "seq_len": w0.seq_len,
        "precision": w0.precision,
        "trainable": {w.method: w.trainable for w in plan.workloads},
        "options": [
            {
                "method": o.method,
                "strategy": o.label,
                "weights": gib(o.estimate.weights),
                "gradients": gib(o.estimate.gradients),
                "optimizer": gib(o.estimate.optimizer),
                "activations": gib(o.estimate.activations),
                "logits": gib(o.estimate.logits),
                "overhead": gib(o.estimate.overhead),
                "total": gib(o.estimate.total),
                "cpu_offloaded": gib(o.estimate.cpu_offloaded),
                "fits": o.fits,
                "rel_time": o.rel_time,
                "launchable": o.launchable,
            }
            for o in plan.options
        ],
        "chosen": None
        if plan.chosen is None
        else {"method": plan.chosen.method, "strategy": plan.chosen.label},
        "why": plan.why,
    }
