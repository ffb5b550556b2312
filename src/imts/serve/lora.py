"""Mixed-adapter LoRA as two matrix products per layer: every loaded adapter's ``A`` stacked into one
matrix and its ``B`` into another, and each row of a batch masked to its own adapter's columns.

PEFT's ``adapter_names`` does the same sum one adapter at a time — per layer and per adapter in the
batch a gather of its rows, two small products and a scatter back — so with 8 adapters a forward pass
over 30 layers x 4 projections launches about 6,000 small operations (and on 2 shared cores each waits
for both threads). Stacked, it is 2 products, a multiply and an add per layer, whatever the number of
adapters: ``y = base(x) + ((x @ A_used.T) * M) @ B_used.T``, where ``M[row, c]`` is the scaling of the
row's adapter on the columns ``c`` that adapter owns and 0 elsewhere (a row of the bare base: all 0).
Columns of adapters no row asks for are left out of the batch's copy, so a batch of one adapter costs
what PEFT's own path costs.

Covers plain LoRA on linear layers (any rank, alpha, rsLoRA scaling, target modules per adapter);
``stackable`` says no for anything else (DoRA and other variants, LoRA on embeddings or convolutions,
a LoRA bias, ``modules_to_save``), and the caller keeps PEFT's ``adapter_names`` for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def stackable(model: Any) -> bool:
    """Whether every adapter layer of the PEFT ``model`` is plain LoRA on a linear layer."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    for module in model.modules():
        if isinstance(module, AuxiliaryTrainingWrapper):  # modules_to_save, trainable tokens
            return False
        if not isinstance(module, BaseTunerLayer):
            continue
        if type(module) is not LoraLinear or module.lora_variant or any(module.lora_bias.values()):
            return False
        if module.lora_embedding_A or module.lora_magnitude_vector:
            return False
    return True


@dataclass
class _Layer:
    """One LoRA linear layer's adapters, stacked: ``a`` is (sum of ranks, in), ``b`` (out, sum of ranks)."""

    module: torch.nn.Module
    a: torch.Tensor
    b: torch.Tensor
    spans: dict[str, tuple[int, int, float]]  # adapter -> its columns [start, stop) and its scaling
    # this batch's part: the used adapters' columns of a and b, and the rows' mask (None: no row uses one)
    now: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


class StackedLoRA:
    """The LoRA layers of a PEFT model with every loaded adapter stacked, routed per row by ``route``.

    While installed, PEFT's own adapter layers are switched off (they compute the base alone) and a
    forward hook on each adds the stacked adapters' part; ``close`` gives the layers back to PEFT. Build a
    new one (after ``close``) whenever an adapter is loaded or deleted.

    Args:
        model: a PEFT model whose adapter layers pass ``stackable``.
    """

    def __init__(self, model: Any) -> None:
        from peft.tuners.lora.layer import Linear as LoraLinear

        self.model = model
        self.layers: list[_Layer] = []
        self._names: tuple[str, ...] | None = None
        with torch.no_grad():
            for module in model.modules():
                if not isinstance(module, LoraLinear) or not module.lora_A:
                    continue
                names = sorted(module.lora_A.keys())
                spans: dict[str, tuple[int, int, float]] = {}
                start = 0
                for name in names:
                    rank = module.lora_A[name].weight.shape[0]
                    spans[name] = (start, start + rank, float(module.scaling[name]))
                    start += rank
                a = torch.cat([module.lora_A[n].weight for n in names])
                b = torch.cat([module.lora_B[n].weight for n in names], dim=1)
                self.layers.append(_Layer(module, a, b, spans))
        self._hooks = [layer.module.register_forward_hook(_adder(layer)) for layer in self.layers]
        model.base_model.disable_adapter_layers()  # the layers compute the base only; the hooks add the rest

    def route(self, adapter_names: list[str]) -> None:
        """From now on, row ``i`` of every forward pass goes through adapter ``adapter_names[i]`` (a name
        no layer holds, such as PEFT's ``__base__``, is the bare base)."""
        if self._names == tuple(adapter_names):
            return
        self._names = tuple(adapter_names)
        plans: dict[tuple[tuple[str, tuple[int, int, float]], ...], tuple[torch.Tensor, torch.Tensor]] = {}
        wanted = set(adapter_names)
        for layer in self.layers:
            used = tuple(sorted((n, s) for n, s in layer.spans.items() if n in wanted))
            if not used:  # no row goes through this layer's adapters
                layer.now = None
                continue
            if used not in plans:
                plans[used] = _plan(used, adapter_names, layer.a)
            cols, mask = plans[used]
            if cols.numel() == layer.a.shape[0]:
                layer.now = (layer.a, layer.b, mask)
            else:
                layer.now = (layer.a.index_select(0, cols), layer.b.index_select(1, cols), mask)

    def close(self) -> None:
        """Remove the hooks and give the adapter layers back to PEFT."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.model.base_model.enable_adapter_layers()


def _plan(
    used: tuple[tuple[str, tuple[int, int, float]], ...], adapter_names: list[str], like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The stacked columns of the adapters in use, and the (rows, 1, columns) mask scaling each row's
    own adapter's columns (dtype and device of ``like``)."""
    cols: list[int] = []
    where: dict[str, tuple[int, int, float]] = {}
    for name, (start, stop, scaling) in used:
        where[name] = (len(cols), len(cols) + stop - start, scaling)
        cols.extend(range(start, stop))
    mask = torch.zeros((len(adapter_names), 1, len(cols)), dtype=like.dtype)
    for row, name in enumerate(adapter_names):
        if name in where:
            lo, hi, scaling = where[name]
            mask[row, 0, lo:hi] = scaling
    return torch.tensor(cols, dtype=torch.long, device=like.device), mask.to(like.device)


def _adder(layer: _Layer) -> Any:
    def hook(module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor | None:
        if layer.now is None:
            return None
        a, b, mask = layer.now
        x = args[0]
        # x is (rows, positions, in): every position of a row goes through the row's adapter
        return out.add_(F.linear(F.linear(x.to(a.dtype), a) * mask, b).to(out.dtype))

    return hook
