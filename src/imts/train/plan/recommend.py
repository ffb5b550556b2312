"""Strategy recommender: every (method, parallel strategy, checkpointing) option with its memory per
device, whether it fits, a relative step time, and the choice: the fastest option that fits, the
simplest one on a tie.

Relative step times are rough, stated factors (the numbers behind them are in the option's notes):
gradient checkpointing recomputes the forward pass (x1.33); FSDP/ZeRO-3 moves 1.5x the data of DDP
(+10% on NVLink, +30% over PCIe); optimizer offload runs Adam on the CPU and ships states over PCIe
(x1.5); LoRA skips the weight gradients (4N instead of 6N FLOPs per token: x0.7); QLoRA dequantises
every 4-bit weight on the fly, typically 30-40% slower than LoRA (x0.98). Tensor parallelism is
listed with its numbers but IMTS cannot launch it
(it needs a Megatron-style trainer), so it is chosen only when nothing else fits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from imts.train.plan.memory import Estimate, GiB, Hardware, Method, Strategy, Workload, estimate

CHECKPOINTING_COST = 4 / 3
METHOD_COST = {"full": 1.0, "lora": 0.7, "qlora": 0.98}
# Simplicity order, used to break ties in step time.
SIMPLICITY = ["single", "DDP", "ZeRO-2", "FSDP/ZeRO-3", "ZeRO-3+offload", "offload", "TP"]


@dataclass(frozen=True)
class Option:
    method: Method
    strategy: Strategy
    estimate: Estimate
    fits: bool
    rel_time: float
    launchable: bool

    @property
    def label(self) -> str:
        name = f"{self.strategy.name}" + (f" tp={self.strategy.tp}" if self.strategy.tp > 1 else "")
        return name + (" + checkpointing" if self.strategy.checkpointing else "")


@dataclass(frozen=True)
class Plan:
    hardware: Hardware
    workloads: list[Workload]
    options: list[Option]
    chosen: Option | None
    why: str


def strategies(hw: Hardware) -> list[Strategy]:
    """The parallel strategies that make sense on ``hw`` (without checkpointing)."""
    if hw.world == 1:
        out = [Strategy("single")]
        if hw.device.kind == "gpu":
            out.append(Strategy("offload", offload_optimizer=True))
        return out
    out = [
        Strategy("DDP"),
        Strategy("ZeRO-2", shard_grads_optim=True),
        Strategy("FSDP/ZeRO-3", shard_grads_optim=True, shard_weights=True),
        Strategy("ZeRO-3+offload", shard_grads_optim=True, shard_weights=True, offload_optimizer=True),
    ]
    tp = 2
    while tp <= hw.per_node:
        out.append(Strategy("TP", tp=tp))
        tp *= 2
    return out


def relative_time(method: Method, s: Strategy, hw: Hardware) -> float:
    t = METHOD_COST[method]
    slow_link = hw.device.interconnect == "PCIe" or hw.nodes > 1
    if s.shard_weights:
        t *= 1.3 if slow_link else 1.1
    if s.offload_optimizer:
        t *= 1.5
    if s.tp > 1:
        t *= 1.8 if hw.device.interconnect == "PCIe" else 1.1
    if s.checkpointing:
        t *= CHECKPOINTING_COST
    return round(t, 3)


def options(w: Workload, hw: Hardware) -> list[Option]:
    out = []
    for base in strategies(hw):
        if base.tp > 1 and (w.arch.heads % base.tp or w.arch.kv_heads % base.tp):
            continue  # heads must split evenly over the tensor-parallel ranks
        for ckpt in (False, True):
            s = replace(base, checkpointing=ckpt)
            est = estimate(w, s, hw)
            out.append(
                Option(
                    w.method,
                    s,
                    est,
                    est.total <= hw.device.usable,
                    relative_time(w.method, s, hw),
                    launchable=s.tp == 1,
                )
            )
    return out


def _rank(o: Option) -> tuple[float, int, bool]:
    return (o.rel_time, SIMPLICITY.index(o.strategy.name), o.strategy.checkpointing)


def recommend(workloads: list[Workload], hw: Hardware) -> Plan:
    """All options for each workload (one per method considered), and the recommended one."""
    opts = [o for w in workloads for o in options(w, hw)]
    fitting = sorted((o for o in opts if o.fits and o.launchable), key=_rank)
    if not fitting:
        fitting = sorted((o for o in opts if o.fits), key=_rank)
    if not fitting:
        smallest = min(opts, key=lambda o: o.estimate.total)
        why = (
            f"nothing fits in {hw.device.usable / GiB:.1f} GiB usable per device; the smallest option "
            f"({smallest.method}, {smallest.label}) needs {smallest.estimate.total / GiB:.1f} GiB: use more "
            "or larger GPUs, QLoRA, a shorter sequence or a smaller micro-batch"
        )
        return Plan(hw, workloads, opts, None, why)
    chosen = fitting[0]
    return Plan(hw, workloads, opts, chosen, _why(chosen, opts, hw))


def _why(chosen: Option, opts: list[Option], hw: Hardware) -> str:
    need = chosen.estimate.total / GiB
    kind = "fastest option that fits" if chosen.launchable else "only option that fits"
    parts = [
        f"{chosen.method} with {chosen.label}: the {kind} "
        f"({need:.1f} of {hw.device.usable / GiB:.1f} GiB usable per device, relative step time "
        f"{chosen.rel_time:.2f})"
    ]
    same = [o for o in opts if o.method == chosen.method]
    faster_misses = [o for o in same if o.rel_time < chosen.rel_time and not o.fits]
    if faster_misses:
        best = min(faster_misses, key=_rank)
        parts.append(f"{best.label} would be faster but needs {best.estimate.total / GiB:.1f} GiB")
    tp = [o for o in opts if not o.launchable and o.fits and o.rel_time < chosen.rel_time]
    if chosen.launchable and tp:
        best_tp = min(tp, key=_rank)
        parts.append(
            f"{best_tp.label} would fit and be faster ({best_tp.rel_time:.2f}) with a Megatron-style trainer"
        )
    if not chosen.launchable:
        parts.append("tensor parallelism needs a Megatron-style trainer: IMTS generates no config for it")
    full = [o for o in opts if o.method == "full"]
    if chosen.method != "full" and full and not any(o.fits for o in full):
        parts.append(f"no full fine-tune fits (at least {min(o.estimate.total for o in full) / GiB:.1f} GiB)")
    return "; ".join(parts)
