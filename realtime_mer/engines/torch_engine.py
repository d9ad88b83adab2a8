"""The torch backend: eager on CPU; on CUDA one captured CUDA graph per input shape, replayed.

On CUDA the first call with a new batch size allocates static input/output buffers and pinned host
staging arrays, warms the model up on a side stream, captures a ``torch.cuda.CUDAGraph`` and keeps
it; later calls with that batch size copy the inputs in, replay the graph and copy the outputs out,
with no allocation besides the returned arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from realtime_mer.engines.base import BackendUnavailableError, Engine
from realtime_mer.models.checkpoint import ModelMeta

_WARMUP_CALLS = 3


@dataclass
class _Graph:
    """One captured graph for one batch size, with its static buffers."""

    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]  # device, float32 (B, *shape)
    outputs: tuple[torch.Tensor, ...]  # device, float32, written by replay
    host_in: tuple[np.ndarray, ...]  # pinned
    host_out: tuple[torch.Tensor, ...]  # pinned


class TorchEngine(Engine):
    """Run an ``nn.Module`` with torch.

    Args:
        model: the module; moved to ``device`` and put in eval mode (in place).
        meta: the model's metadata: input specs and output names (e.g. from ``load_checkpoint``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp16"`` runs CUDA under autocast float16; on CPU everything is fp32.
        cuda_graphs: capture and replay CUDA graphs on CUDA (eager when False).
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        meta: ModelMeta,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__({s.name: (None, *s.shape) for s in meta.inputs}, meta.outputs)
        self.meta = meta
        self._device = torch.device(device)
        if self._device.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    f"torch {torch.__version__} has no usable CUDA here (a CPU build, or no GPU visible): "
                    "use device cpu"
                )
            if self._device.index is None:
                self._device = torch.device("cuda", torch.cuda.current_device())
        self.precision = "fp16" if precision == "fp16" and self._device.type == "cuda" else "fp32"
        self._graphs_on = cuda_graphs and self._device.type == "cuda"
        self._model = model.to(self._device).eval()
        self._graphs: dict[int, _Graph] = {}
        self._stream = torch.cuda.Stream(self._device) if self._device.type == "cuda" else None  # type: ignore[no-untyped-call]

    @property
    def device(self) -> str:
        if self._device.type == "cuda":
            return f"{self._device} ({torch.cuda.get_device_name(self._device)})"
        return "cpu"

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp16":
            return torch.autocast("cuda", dtype=torch.float16, cache_enabled=False)
        return contextlib.nullcontext()

    def _forward(self, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        with self._autocast():
            out = self._model(*xs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(self.output_names):
            raise ValueError(f"the model returned {len(out)} outputs but its spec names {self.output_names}")
        return tuple(o.float() for o in out)

    def predict(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        feed = self.feed(inputs)
        with torch.inference_mode():
            if self._device.type == "cpu":
                outs = self._forward(tuple(torch.from_numpy(x) for x in feed.values()))
                return {n: o.numpy() for n, o in zip(self.output_names, outs)}
            if not self._graphs_on:
                with torch.cuda.stream(self._stream):
                    outs = self._forward(tuple(torch.from_numpy(x).to(self._device) for x in feed.values()))
                    host = [o.cpu() for o in outs]
                return {n: o.numpy() for n, o in zip(self.output_names, host)}
            return self._replay(tuple(feed.values()))

    def _replay(self, xs: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
        batch = xs[0].shape[0]
        g = self._graphs.get(batch) or self._capture(xs)
        with torch.cuda.stream(self._stream):
            for dst, pinned, x in zip(g.inputs, g.host_in, xs):
                np.copyto(pinned, x)
                dst.copy_(torch.from_numpy(pinned), non_blocking=True)
            g.graph.replay()
            for host, o in zip(g.host_out, g.outputs):
                host.copy_(o, non_blocking=True)
        assert self._stream is not None
        self._stream.synchronize()
        return {n: h.numpy().copy() for n, h in zip(self.output_names, g.host_out)}

    def _capture(self, xs: tuple[np.ndarray, ...]) -> _Graph:
        static = tuple(torch.from_numpy(x).to(self._device) for x in xs)
        side = torch.cuda.Stream(self._device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_CALLS):
                self._forward(static)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            outs = self._forward(static)
        g = _Graph(
            graph=graph,
            inputs=static,
            outputs=outs,
            host_in=tuple(torch.empty(x.shape, dtype=torch.float32, pin_memory=True).numpy() for x in xs),
            host_out=tuple(torch.empty(o.shape, dtype=torch.float32, pin_memory=True) for o in outs),
        )
        self._graphs[xs[0].shape[0]] = g
        return g

    def close(self) -> None:
        self._graphs.clear()
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
