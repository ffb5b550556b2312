"""Memory per device of one training configuration: weights, gradients, optimizer, activations, logits.

The arithmetic, per parameter (P: all parameters, T: trainable ones):

* mixed precision (bf16) Adam: 2 bytes bf16 weights + 2 bf16 gradients + 4 fp32 master weights +
  8 fp32 Adam moments = 16 bytes per trainable parameter (the seed rule's 12·P of optimizer state plus
  master weights); frozen weights cost 2 bytes (bf16) or ~0.52 bytes (4-bit NF4 with double quantised
  block scales, QLoRA).
* fp32 (the CPU mode): 4 bytes weights, 4 bytes gradients and 8 bytes Adam moments per trainable
  parameter, 4 bytes per frozen one; activations in fp32.
* activations: what autograd keeps per token per decoder layer. Korthikanti et al. (2022) count
  ``s·b·h·(34 + 5·a·s/h)`` bytes per layer in 16-bit for a GPT block with a 4h MLP and dropout. For the
  Hugging Face Llama block (GQA attention, SwiGLU MLP of width i, RMSNorm, no dropout, SDPA that keeps
  no s x s matrix) the saved tensors are, in elements per token: 2 RMSNorms x (input + normalised
  output) = 4h; q, k and v after the KV heads are repeated to all heads, and the attention output,
  4·heads·head_dim; gate, up, SiLU and product 4i; LoRA's rank-r intermediates r per adapted linear;
  the padding mask's row that SDPA keeps, s. On top of that structural count come copies that depend
  on precision and method (``EXTRA``): mixed precision keeps fp32 tensors next to bf16 ones. Counted
  with ``torch.autograd.graph.saved_tensors_hooks`` (``benchmarks/saved_activations.py``) on
  SmolLM2-135M, the formula is within 0.1% of the counts each regime was calibrated on, and 4-6% above
  the CUDA counts of the regimes calibrated on the CPU. With gradient checkpointing only each layer's
  input (h) is kept, plus one layer's full set while it is recomputed.
* logits: the LM head's output in compute precision plus its fp32 log-softmax and gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from imts.core.errors import InputError
from imts.train.plan.arch import LINEAR_NAMES, Arch

if TYPE_CHECKING:
    from imts.train.spec import RunSpec

GiB = 1024**3
Method = Literal["full", "lora", "qlora"]
Precision = Literal["bf16", "fp32"]
NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # 4-bit codes + 8-bit block scales + their fp32 scales
CUDA_CONTEXT = 1.0 * GiB  # CUDA context, cuBLAS/NCCL workspaces: measured ~0.8-1.2 GiB on A100/H100
USABLE_FRACTION = 0.9  # the caching allocator's fragmentation and spikes take the rest


@dataclass(frozen=True)
class Device:
    name: str
    memory: int  # bytes
    interconnect: Literal["NVLink", "PCIe", "none"]
    kind: Literal["gpu", "cpu"] = "gpu"

    @property
    def usable(self) -> int:
        return int(self.memory * USABLE_FRACTION)


@dataclass(frozen=True)
class Hardware:
    device: Device
    per_node: int = 1
    nodes: int = 1

    @property
    def world(self) -> int:
        return self.per_node * self.nodes

    def __str__(self) -> str:
        nodes = f" x {self.nodes} nodes" if self.nodes > 1 else ""
        return f"{self.per_node}x{self.device.name}{nodes} ({self.device.interconnect})"


GPUS: dict[str, Device] = {
    "a100-80gb": Device("A100-80GB", 80 * GiB, "NVLink"),
    "a100-40gb": Device("A100-40GB", 40 * GiB, "NVLink"),
    "h100": Device("H100-80GB", 80 * GiB, "NVLink"),
    "h100-80gb": Device("H100-80GB", 80 * GiB, "NVLink"),
    "h200": Device("H200-141GB", 141 * GiB, "NVLink"),
    "rtx4090-24gb": Device("RTX4090-24GB", 24 * GiB, "PCIe"),
    "rtx4090": Device("RTX4090-24GB", 24 * GiB, "PCIe"),
    "l4": Device("L4-24GB", 24 * GiB, "PCIe"),
    "a10g": Device("A10G-24GB", 24 * GiB, "PCIe"),
}


def parse_hardware(text: str, nodes: int = 1) -> Hardware:
    """``8xA100-80GB``, ``4xH100``, ``2xRTX4090-24GB``, ``1xL4`` (devices per node), or ``cpu``."""
    if nodes < 1:
        raise InputError("nodes must be >= 1", field="nodes")
    if text.strip().lower() == "cpu":
        import psutil

        return Hardware(Device("CPU", psutil.virtual_memory().total, "none", kind="cpu"))
    count, sep, name = text.strip().lower().partition("x")
    if not sep or not count.isdigit() or int(count) < 1:
        raise InputError(f"'{text}' is not COUNTxGPU (e.g. 8xA100-80GB)", field="gpus")
    if name not in GPUS:
        raise InputError(f"unknown GPU '{name}'; known: {', '.join(sorted(GPUS))}, cpu", field="gpus")
    return Hardware(GPUS[name], int(count), nodes)


@dataclass(frozen=True)
class Workload:
    """What is trained and how: the inputs of the estimate."""

    arch: Arch
    method: Method = "lora"
    micro_batch: int = 1
    seq_len: int = 4096
    precision: Precision = "bf16"
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = LINEAR_NAMES
    loss_fraction: float = 1.0  # share of positions whose logits are computed (IMTS: response tokens)

    @classmethod
    def of_run(
        cls, spec: RunSpec, arch: Arch, micro_batch: int, seq_len: int, loss_fraction: float = 1.0
    ) -> Workload:
        """The workload of a training run's spec: its method, resolved precision and LoRA settings."""
        from imts.core.hardware import resolve_precision

        method: Method = "qlora" if spec.quantization == "nf4" else ("lora" if spec.uses_lora else "full")
        precision: Precision = "fp32" if resolve_precision(spec.precision) == "fp32" else "bf16"
        targets = tuple(spec.lora.target_modules)
        return cls(arch, method, micro_batch, seq_len, precision, spec.lora.r, targets, loss_fraction)

    @property
    def trainable(self) -> int:
        if self.method == "full":
            return self.arch.params()
        return self.arch.lora_params(self.lora_rank, self.lora_targets)


@dataclass(frozen=True)
class Strategy:
    """How model states and activations are spread over ``world`` devices."""

    name: str
    shard_grads_optim: bool = False  # ZeRO-2 (and 3)
    shard_weights: bool = False  # ZeRO-3 / FSDP FULL_SHARD
    offload_optimizer: bool = False  # optimizer states (+ master weights) in CPU memory
    tp: int = 1  # tensor-parallel degree within a node (with sequence parallelism)
    checkpointing: bool = False


@dataclass(frozen=True)
class Estimate:
    """Bytes per device, by component; ``cpu_offloaded`` lives in host memory instead."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    cpu_offloaded: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.overhead


def state_bytes(w: Workload) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes of the whole model, before any sharding."""
    p, t = w.arch.params(), w.trainable
    if w.method == "full":
        if w.precision == "fp32":
            return 4.0 * p, 4.0 * p, 8.0 * p
        return 2.0 * p, 2.0 * p, 12.0 * p  # bf16 weights + grads; fp32 master + Adam m, v
    if w.method == "qlora":
        quantised = w.arch.layers * w.arch.layer_linear_params()
        frozen = NF4_BYTES * quantised + 2.0 * (p - quantised)  # embeddings, norms stay bf16
        return frozen + 2.0 * t, 2.0 * t, 12.0 * t
    if w.precision == "fp32":
        return 4.0 * p + 4.0 * t, 4.0 * t, 8.0 * t
    return 2.0 * p + 2.0 * t, 2.0 * t, 12.0 * t


# Tensors beyond the structural count, per token per layer: (copies in the compute dtype, in units of
# the hidden size h; fp32 copies, in units of h; MLP tensors (of the four) kept in fp32 instead of the
# compute dtype). Counted with ``benchmarks/saved_activations.py`` on SmolLM2-135M (benchmarks/RESULTS.md,
# issue 4): the first four on the CPU (CUDA counts 4-6% less), QLoRA on an H200. In every regime SDPA's
# output and o_proj's contiguous input are two tensors, and a trained norm weight keeps the normalised
# input too (full fine-tune). Under bf16 autocast Llama's RMSNorm upcasts its input to fp32 and keeps
# that copy, PEFT's fp32 adapters get their own bf16 casts of their inputs, and with an fp32 residual
# stream (a full fine-tune over fp32 master weights) the norms' fp32 outputs are kept next to
# autocast's bf16 casts of them. QLoRA keeps norms and embeddings in fp32 and bitsandbytes returns its
# 4-bit matmuls in the input's dtype: the MLP's gate, up and SiLU outputs stay fp32.
EXTRA: dict[tuple[Precision, Method], tuple[float, float, int]] = {
    ("fp32", "lora"): (1.65, 0.0, 0),
    ("fp32", "full"): (3.65, 0.0, 0),
    ("bf16", "lora"): (3.67, 2.0, 0),
    ("bf16", "full"): (2.6, 4.07, 0),
    ("bf16", "qlora"): (1.06, 2.0, 3),
}


def activation_bytes_per_token_layer(w: Workload) -> float:
    """Bytes autograd keeps per token in one decoder layer (see the module docstring and ``EXTRA``)."""
    a = w.arch
    elem = 4 if w.precision == "fp32" else 2
    lora = w.lora_rank * len(w.lora_targets) if w.method != "full" else 0
    # 4h norms, q/k/v (repeated to all heads) and the attention output, 4i MLP, LoRA's rank-r
    # intermediates, and the row of the padding mask SDPA keeps (seq_len elements per token).
    structural = 4 * a.hidden + 4 * a.heads * a.hd + 4 * a.intermediate + lora + w.seq_len
    extra, extra_fp32, mlp_fp32 = EXTRA[(w.precision, w.method)]
    fp32_mlp = (4 - elem) * mlp_fp32 * a.intermediate  # what keeping those MLP tensors in fp32 adds
    return elem * (structural + extra * a.hidden) + 4 * extra_fp32 * a.hidden + fp32_mlp


def activation_bytes(w: Workload, checkpointing: bool, tp: int = 1) -> tuple[float, float]:
    """(activations, logits) bytes of one micro-batch on one device."""
    elem = 4 if w.precision == "fp32" else 2
    tokens = w.micro_batch * w.seq_len
    per_layer = tokens * activation_bytes_per_token_layer(w)
    if checkpointing:
        acts = w.arch.layers * tokens * w.arch.hidden * elem + per_layer  # inputs + one layer recomputed
    else:
        acts = w.arch.layers * per_layer
    logits = tokens * w.loss_fraction * w.arch.vocab * (elem + 4 + 4)
    return acts / tp, logits / tp


def estimate(w: Workload, s: Strategy, hw: Hardware) -> Estimate:
    """Memory per device of workload ``w`` run with strategy ``s`` on ``hw``."""
    weights, grads, optim = state_bytes(w)
    notes: list[str] = []
    dp = max(1, hw.world // s.tp)  # data-parallel replicas
    weights, grads, optim = weights / s.tp, grads / s.tp, optim / s.tp
    if s.shard_grads_optim or s.shard_weights:
        grads, optim = grads / dp, optim / dp
    overhead = CUDA_CONTEXT if hw.device.kind == "gpu" else 0.0
    if s.shard_weights:
        weights = weights / dp
        # FSDP/ZeRO-3 gathers one layer's full weights (and prefetches the next) while computing it.
        overhead += 2 * w.arch.layer_params() * (4 if w.precision == "fp32" else 2)
    offloaded = 0.0
    if s.offload_optimizer:
        offloaded, optim = optim, 0.0
        notes.append(f"{offloaded / GiB:.1f} GiB of optimizer state per process in CPU memory")
    acts, logits = activation_bytes(w, s.checkpointing, s.tp)
    return Estimate(weights, grads, optim, acts, logits, overhead, offloaded, notes)
