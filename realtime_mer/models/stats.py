"""Size and cost of a model: parameter count and FLOPs (``torch.utils.flop_counter``).

FLOPs are those of convolutions and matrix products, 2 per multiply-accumulate, as
``FlopCounterMode`` counts them, plus the LSTM's matrix products, which ``FlopCounterMode`` misses in
the fused CPU (oneDNN) and cuDNN kernels. Element-wise work, pooling, normalisation and the LSTM's
gate non-linearities are not counted.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import get_spec


def _mkldnn_rnn_layer_flops(input_shape, w_ih, w_hh, *_, **__) -> int:
    """One LSTM layer and direction on CPU (``aten.mkldnn_rnn_layer``): ``(T, B, I)`` input, weights ``(4H, I)``,
    ``(4H, H)``."""
    steps = input_shape[0] * input_shape[1]
    return 2 * steps * w_ih[0] * (w_ih[1] + w_hh[1])


def _cudnn_rnn_flops(input_shape, weights, *_, **__) -> int:
    """A whole cuDNN RNN (``aten._cudnn_rnn``): every 2-D weight matrix applied at every step."""
    steps = input_shape[0] * input_shape[1]
    return sum(2 * steps * w[0] * w[1] for w in weights if len(w) == 2)


# The fused RNN kernels FlopCounterMode does not know; elsewhere an LSTM decomposes into counted matmuls.
CUSTOM_FLOPS = {
    torch.ops.aten.mkldnn_rnn_layer: _mkldnn_rnn_layer_flops,
    torch.ops.aten._cudnn_rnn: _cudnn_rnn_flops,
}


def param_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flop_count(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one ``model(*inputs)`` call under ``torch.no_grad`` (see the module docstring)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
        model(*inputs)
    return counter.get_total_flops()


def model_stats(name: str, overrides: dict[str, Any] | None = None, batch: int = 1) -> dict[str, int]:
    """``{"params": ..., "flops": ...}`` of registered model ``name`` in eval mode at ``batch``."""
    spec = get_spec(name)
    model = spec.build(spec.config(overrides)).eval()
    return {"params": param_count(model), "flops": flop_count(model, spec.example_inputs(batch, overrides))}
