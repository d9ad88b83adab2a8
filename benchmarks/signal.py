"""Benchmarks of the signal stages: decode, landmarks, alignment, EVM, spotting, flow.

Every stage measures its backends side by side in one run on the same inputs. The face comes from
``--video`` when given, else from scikit-image's astronaut photograph (a real face that ships with
the package) placed in a 640x480 frame, so the benchmark runs on any machine.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from .timing import Result, measure, row


@dataclass
class Inputs:
    """What the stages share: a 640x480 face clip on disk and its decoded frames (BGR uint8)."""

    clip: Path
    frames: list[np.ndarray]
    fps: float


def _astronaut_frame() -> np.ndarray:
    from skimage.data import astronaut

    face = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)[:300, 100:400]  # the head and shoulders
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[90:390, 170:470] = face
    return frame


def cycling(fn: Callable[[int, object], object], items: Sequence) -> Callable[[], object]:
    """A no-argument call for :func:`measure`: each call runs ``fn(n, item)`` on the next item of
    ``items`` in a loop, ``n`` counting calls from 1."""
    counter = itertools.count(1)
    return lambda: (n := next(counter), fn(n, items[n % len(items)]))[1]


def make_inputs(workdir: Path, video: str | None = None, n: int = 90) -> Inputs:
    """Decode ``video`` (first ``n`` frames, resized to 640x480) or make a clip of the still astronaut.

    The astronaut clip gets sensor noise and a 1 px sway so that decoding and alignment do real work.
    """
    if video:
        with av.open(video) as c:
            s = c.streams.video[0]
            fps = float(s.average_rate or 30)
            frames = []
            for f in c.decode(s):
                frames.append(cv2.resize(f.to_ndarray(format="bgr24"), (640, 480), interpolation=cv2.INTER_AREA))
                if len(frames) >= n:
                    break
    else:
        fps = 30.0
        base = _astronaut_frame()
        rng = np.random.default_rng(0)
        frames = []
        for i in range(n):
            m = np.float32([[1, 0, np.sin(i / 8)], [0, 1, 0.5 * np.cos(i / 11)]])
            f = cv2.warpAffine(base, m, (640, 480), borderMode=cv2.BORDER_REFLECT)
            frames.append(np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8))
    clip = workdir / "bench_640x480.mp4"
    with av.open(str(clip), "w") as c:
        s = c.add_stream("libx264", rate=int(round(fps)))
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return Inputs(clip, frames, fps)


def bench_decode(inp: Inputs, iters: int) -> list[Result]:
    """Per-frame decode to BGR: raw PyAV ``to_ndarray`` (reference) vs the capture stage's file source."""
    from realtime_mer.capture import open_source

    def decode_all_pyav() -> None:
        with av.open(str(inp.clip)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for f in c.decode(s):
                f.to_ndarray(format="bgr24")

    def decode_all_source() -> None:
        src = open_source("video", str(inp.clip))
        src.open()
        while src.read() is not None:
            pass
        src.close()

    n = len(inp.frames)
    out = []
    for backend, fn in (("pyav-to_ndarray", decode_all_pyav), ("capture-source", decode_all_source)):
        t = measure(fn, warmup=1, iters=max(3, iters // 10)) / n
        out.append(row("decode", backend, "640x480", t, note=f"per frame, h264, {n}-frame clip"))
    return out


def bench_faces(inp: Inputs, iters: int) -> list[Result]:
    """MediaPipe landmarks per 640x480 frame, and alignment of one face to its reference (128x128)."""
    from realtime_mer.face.align import TrackAligner
    from realtime_mer.face.landmarker import Landmarker

    out = []
    with Landmarker() as lm:
        detect = cycling(lambda n, frame: lm.detect(frame, 33 * n), inp.frames)
        out.append(row("landmarks", "mediapipe-cpu", "640x480", measure(detect, iters=iters)))
        start = 33 * (iters + 100)  # past every timestamp the timed calls used
        marks = [lm.detect(f, start + 33 * k) for k, f in enumerate(inp.frames[:10])]
    if not marks[0]:
        raise RuntimeError("the benchmark face was not found by MediaPipe; pass --video with a frontal face")
    for refine in (False, True):
        al = TrackAligner(size=(128, 128), refine=refine)
        al.set_reference(inp.frames[0], marks[0][0])
        pairs = [(f, m[0]) for f, m in zip(inp.frames[:10], marks)]
        align = cycling(lambda _, pair, al=al: al.align(*pair), pairs)
        out.append(
            row("alignment", "similarity+refine" if refine else "similarity", "128x128", measure(align, iters=iters))
        )
    return out


def _face_crops(inp: Inputs, size: int, n: int = 16) -> list[np.ndarray]:
    """``n`` crops of the frame centre resized to ``size`` (the EVM/spotting/flow inputs)."""
    h, w = inp.frames[0].shape[:2]
    return [
        cv2.resize(f[h // 2 - 150 : h // 2 + 150, w // 2 - 150 : w // 2 + 150], (size, size)) for f in inp.frames[:n]
    ]


EVM_BATCH = 32
"""Streams per launch of the batched CUDA EVM row."""


def bench_evm(inp: Inputs, iters: int) -> list[Result]:
    """EVM per frame: the NumPy reference vs Numba CPU, same frames and config, at 64, 128 and 256 px;
    where a CUDA GPU is present also Numba CUDA, one stream a launch and :data:`EVM_BATCH` streams a
    launch (host frames in and out, the time per launch)."""
    from numba import cuda

    from realtime_mer.magnify import MagnifyConfig, make_magnifier

    names = {"reference": "numpy-reference", "numba": "numba-cpu", "cuda": "numba-cuda"}
    backends = ("reference", "numba", "cuda") if cuda.is_available() else ("reference", "numba")
    out = []
    for size in (64, 128, 256):
        crops = _face_crops(inp, size)
        for backend in backends:
            mag = make_magnifier(MagnifyConfig(backend=backend), crops[0].shape, inp.fps)
            step = cycling(lambda _, crop, mag=mag: mag.process(crop), crops)
            out.append(row("evm", names[backend], f"{size}x{size}", measure(step, warmup=10, iters=iters)))
        if "cuda" in backends:
            from realtime_mer.magnify.numba_cuda import CudaMagnifier

            batched = CudaMagnifier(MagnifyConfig(backend="cuda"), crops[0].shape, inp.fps, capacity=EVM_BATCH)
            stacks = [np.stack([crops[(k + j) % len(crops)] for j in range(EVM_BATCH)]) for k in range(len(crops))]
            step = cycling(lambda _, batch, mag=batched: mag.process_batch(batch), stacks)
            t = measure(step, warmup=10, iters=iters)
            out.append(row("evm", "numba-cuda", f"{size}x{size}", t, batch=EVM_BATCH, note="per launch"))
    return out


def bench_spotting(inp: Inputs, iters: int) -> list[Result]:
    """Spotting per frame on 128x128 crops."""
    from realtime_mer.spotting import SpotConfig, Spotter

    crops = _face_crops(inp, 128)
    sp = Spotter(inp.fps, SpotConfig(), crops[0].shape)
    step = cycling(lambda n, crop: sp.update(n, n / inp.fps, crop), crops)
    return [row("spotting", "numpy", "128x128", measure(step, warmup=10, iters=max(iters, 200)))]


def bench_flow(inp: Inputs, iters: int) -> list[Result]:
    """Onset->apex flow per method and size, plus the RCN 3-channel map (60x60 from a 128x128 crop)."""
    from realtime_mer.flow import compute_flow, flow_strain_map

    out = []
    for w, h in ((60, 60), (128, 128), (245, 300)):  # width x height; 245x300 is STRCN-G's input
        crops = _face_crops(inp, 128)
        a, b = (cv2.resize(c, (w, h)) for c in (crops[0], crops[5]))
        for method in ("dis", "farneback", "tvl1"):
            t = measure(
                lambda a=a, b=b, method=method: compute_flow(a, b, method=method),
                warmup=2,
                iters=iters if method != "tvl1" else max(5, iters // 5),
            )
            out.append(row("flow", method, f"{w}x{h}", t))
    crops = _face_crops(inp, 128)
    out.append(
        row(
            "flow",
            "flow_strain_map-dis",
            "128->60x60",
            measure(lambda: flow_strain_map(crops[0], crops[5], size=(60, 60), method="dis"), iters=iters),
        )
    )
    return out


STAGES = {
    "decode": bench_decode,
    "landmarks": bench_faces,
    "alignment": bench_faces,
    "evm": bench_evm,
    "spotting": bench_spotting,
    "flow": bench_flow,
}


def workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="realtime-mer-bench-")
