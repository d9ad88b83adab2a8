"""Preprocessing of labelled clips into model inputs, cached on disk, in parallel worker processes.

Per sample (the live path's functions, so training sees what the pipeline sees):

1. frames from ``lead_s`` before the onset to the offset: image files, or the clip's video decoded
   by the live file source (:class:`realtime_mer.capture.pyav.VideoFileSource`, its colour
   conversion and presentation times);
2. face alignment by the live face stage itself (:class:`realtime_mer.face.FaceStage`: MediaPipe
   landmarks, the track's STRCN crop ``face_size`` registered to its first frame, landmarks every
   ``landmark_every`` frames after the track's warm-up, image registration in between), so the
   onset's track is as settled as a live one (:func:`align_sample`). With two faces the one
   nearest ``Sample.extra["bbox"]`` is followed; the crops from the onset on are kept;
3. variants (:func:`realtime_mer.train.augment.variant_grid`): EVM (:func:`realtime_mer.magnify.make_magnifier`)
   at each ``alpha`` (0: none) over the kept frames (:func:`realtime_mer.train.augment.keep_indices`);
4. the apex: the labelled one (the nearest kept frame), or where there is none (or ``apex="strcn"``)
   seed 001's rule ``argmax_t std(I_t - I_onset)`` on the aligned grey frames;
5. the model input: :func:`realtime_mer.inputs.model_input`, the definitions the live recognizer
   uses too (``rcn``, ``strcn-g``, ``strcn-a``, ``regions``, ``dtscnn``).

Pre-computed flow images (``flowimages``) are only read (RGB = channels 0, 1, 2 = u, v, strain, as
the RCN authors' PNGs) and resized.

Cache layout: ``CACHE/<key>/<dataset>/<subject>/<sample>-<source hash>.npz`` where ``key`` hashes
the :class:`PreprocessConfig` (and :data:`CACHE_VERSION`) and the source hash covers the sample's
frames/video path and its onset, apex and offset. Each file holds one array per model input
``(V, *shape)`` (V variants, the test variant first), ``variants`` ``(V, 2)`` (alpha, keep ratio)
and ``apex`` ``(V,)``. A sample whose onset frame shows no face is cached as ``.fail.txt`` with the
reason. A re-run skips every sample that has either file, so an interrupted run resumes.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from realtime_mer.config import settings
from realtime_mer.errors import UserError
from realtime_mer.files import atomic_path, cache_dir
from realtime_mer.flow import STRCN_A_SIZE, FlowMethod
from realtime_mer.inputs import (
    STATE_INPUTS,
    InputKind,
    InputSettings,
    input_def,
    input_kind,
    magnify_sequence,
    model_input,
)
from realtime_mer.train.augment import keep_indices, variant_grid
from realtime_mer.train.datasets import Dataset, Sample
from realtime_mer.types import AlignedFace, FaceObs

CACHE_VERSION = 2  # 2: crops by the live face stage and file source (align_sample)


class PreprocessError(UserError, ValueError):
    """A sample or setting cannot be preprocessed; the message says which and what to do."""


class SampleFailure(Exception):
    """This sample has no usable face (a property of the data, cached so re-runs skip it)."""


@settings
class PreprocessConfig:
    """How clips become model inputs. ``shapes`` is filled from the model spec (:func:`config_for`).

    Attributes:
        input: input kind (see the module docstring).
        shapes: input name -> shape without the batch axis, from the model's spec.
        face_size: aligned crop ``(width, height)``, pixels (the pipeline's ``face.size``).
        landmark_every: landmarks on every Nth frame, registration in between (the pipeline's
            ``face.landmark_every``).
        lead_s: seconds of the clip before the onset that the face stage runs over first (its
            landmark warm-up, ``face.landmark_warmup_s``, is 1 s); 0 opens the track at the onset.
        flow_method, flow_preset: optical flow (``realtime_mer.flow``).
        apex: ``"auto"`` (labelled apex, else the STRCN rule), ``"label"`` or ``"strcn"``.
        alphas: EVM factors of the training variants (0 = no magnification).
        keep_ratios: frame keep ratios of the training variants.
        test_alpha: EVM factor of the test variant (keep ratio 1).
        seed: seed of the frame selection of keep ratios below 1.
        rate, difference, mask: the region window's and STRCN-A's
            (:class:`realtime_mer.inputs.InputSettings`), from the model config.
    """

    input: InputKind = "rcn"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    face_size: tuple[int, int] = (128, 128)
    landmark_every: int = 2
    lead_s: float = 1.0
    flow_method: FlowMethod = "dis"
    flow_preset: str | None = None
    apex: Literal["auto", "label", "strcn"] = "auto"
    alphas: tuple[float, ...] = (0.0,)
    keep_ratios: tuple[float, ...] = (1.0,)
    test_alpha: float = 0.0
    seed: int = 0
    rate: float = 0.0
    difference: float = 0.0
    mask: str = "sequence"

    def __post_init__(self) -> None:
        if self.input not in ("rcn", "strcn-g", "strcn-a", "regions", "dtscnn"):
            raise PreprocessError(f"unknown input kind {self.input!r}")
        if self.landmark_every < 1:
            raise PreprocessError(f"landmark_every must be >= 1, got {self.landmark_every}")
        if not self.lead_s >= 0:
            raise PreprocessError(f"lead_s must be >= 0 seconds, got {self.lead_s}")
        if self.apex not in ("auto", "label", "strcn"):
            raise PreprocessError(f"apex must be 'auto', 'label' or 'strcn', got {self.apex!r}")
        if self.test_alpha and not input_def(self.input).magnified:
            raise PreprocessError(
                f"test_alpha {self.test_alpha}: live, only STRCN-A's crops are magnified, so {self.input} "
                "inputs are tested (and run live) unmagnified; set test_alpha: 0 (magnified training "
                "variants, alphas, stay an augmentation)"
            )
        try:
            variant_grid(self.alphas, self.keep_ratios, self.test_alpha)
        except ValueError as e:
            raise PreprocessError(str(e)) from None

    def input_settings(self) -> InputSettings:
        """What :func:`realtime_mer.inputs.model_input` needs of this config (the test variant's alpha)."""
        return InputSettings(
            dict(self.shapes),
            self.flow_method,
            self.flow_preset,
            self.test_alpha,
            self.rate,
            self.difference,
            self.mask,
        )

    @property
    def variants(self) -> list[tuple[float, float]]:
        return variant_grid(self.alphas, self.keep_ratios, self.test_alpha)

    def key(self) -> str:
        """16 hex digits identifying this config (the cache folder name)."""
        doc = json.dumps({"version": CACHE_VERSION, **asdict(self)}, sort_keys=True, default=list)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]


MODEL_FIELDS = ("input", "shapes", "rate", "difference", "mask")
"""The :class:`PreprocessConfig` fields that come from the model (its spec and config), never from a
settings file or an override."""


def config_for(spec: Any, model_config: dict[str, Any] | None = None, **options: Any) -> PreprocessConfig:
    """The :class:`PreprocessConfig` of registered model ``spec`` (a ``ModelSpec``) built with
    ``model_config``; ``options`` set the other fields. Inputs fed with zeros (the region model's
    LSTM state ``h0``, ``c0``) are left out of ``shapes``."""
    shapes = {t.name: tuple(t.shape) for t in spec.inputs(model_config) if t.name not in STATE_INPUTS}
    window = InputSettings.of_model(spec.config(model_config), shapes)
    options = {"rate": window.rate, "difference": window.difference, "mask": window.mask, **options}
    if window.mask == "dataset":  # STRCN-A: the mask is chosen per fold (train.resolve_mask): cache every pixel, raw
        ((name, (c, _, t)),) = shapes.items()
        shapes = {name: (c, STRCN_A_SIZE[0] * STRCN_A_SIZE[1], t)}
        options.update(difference=0.0, mask="sequence")
    return PreprocessConfig(input=input_kind(spec.name, spec.family), shapes=shapes, **options)


# ---------------------------------------------------------------- reading and aligning frames


def iter_frames(sample: Sample, first: int, last: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """Frames numbered ``first..last`` (inclusive) of ``sample`` as ``(number, t, image)``: its image
    files (``t = number / fps``), else its video decoded by the live path's own file source
    (:class:`realtime_mer.capture.pyav.VideoFileSource`: the same decoder and colour conversion,
    ``t`` the frame's presentation time, s); ``image`` is ``(H, W, 3)`` uint8 BGR."""
    import cv2

    fps = float(sample.fps or 30.0)
    if sample.frames:
        for n in sample.frame_numbers:
            if first <= n <= last:
                img = cv2.imread(str(sample.frame_path(n)), cv2.IMREAD_COLOR)
                if img is None:
                    raise PreprocessError(f"{sample.key}: cannot read image {sample.frame_path(n)}")
                yield n, n / fps, img
        return
    if sample.video is None:
        raise PreprocessError(
            f"{sample.key} has no frames or video: open the dataset root (not only its label sheet) to preprocess it"
        )
    from realtime_mer.capture.base import SourceError
    from realtime_mer.capture.pyav import VideoFileSource

    source = VideoFileSource(sample.video)
    try:
        source.open()
        for n in range(last + 1):
            got = source.read()
            if got is None:
                return
            if n >= first:
                yield n, got[1], got[0]
    except SourceError as e:
        raise PreprocessError(f"{sample.key}: {e}") from None
    finally:
        source.close()


def align_sample(sample: Sample, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crops of ``sample``'s interval as a live stream makes them.

    The live face stage (:class:`realtime_mer.face.FaceStage`: MediaPipe landmarks, tracking, the
    STRCN crop registered to the track's first frame, landmarks every ``landmark_every`` frames after
    the track's warm-up and image registration in between) runs over the frames from ``lead_s``
    before the onset (as far as the clip goes back) to the offset (or the apex), so that at the
    onset the track is as settled as a live one. The face stage's settings are the shipped
    pipeline's (``configs/pipeline.yaml``: ``face.num_faces`` 2 and the rest), but for the crop size
    and ``landmark_every``, which are ``cfg``'s. The face followed is the one nearest
    ``Sample.extra["bbox"]`` when the sample has one, else the widest, chosen on the first frame that
    shows a face; frames where its track has no crop are left out,
    as the live ring buffer holds none for them.

    Returns ``(crops, numbers, points68)``: ``(T, h, w, 3)`` uint8 crops of the frames
    ``numbers`` ``(T,)`` from the onset on, and ``(68, 2)`` float32 points of the onset crop.
    Raises :class:`SampleFailure` when the onset frame shows no face.
    """
    from realtime_mer.face.stage import FaceStage
    from realtime_mer.pipeline import load_pipeline_config
    from realtime_mer.types import Frame

    if sample.onset is None:
        raise PreprocessError(f"{sample.key} has no onset frame")
    last = sample.offset if sample.offset is not None else sample.apex_or_middle()
    fps = float(sample.fps or 30.0)
    hint = sample.extra.get("bbox")
    face = replace(load_pipeline_config().face, size=cfg.face_size, landmark_every=cfg.landmark_every)
    crops: list[np.ndarray] = []
    numbers: list[int] = []
    points68: np.ndarray | None = None
    track: int | None = None
    with FaceStage(face) as stage:
        for n, t, image in iter_frames(sample, max(0, sample.onset - round(cfg.lead_s * fps)), last):
            faces = stage.process(Frame(stream=sample.key, index=n, t=t, captured=0.0, image=image))
            if track is None and faces:
                track = _pick(faces, hint)
            for obs, aligned in faces:
                if obs.track == track and n >= sample.onset:
                    if n == sample.onset:
                        points68 = aligned.points68
                    if points68 is not None:
                        crops.append(aligned.image)
                        numbers.append(n)
    if points68 is None:
        raise SampleFailure("no face found on the onset frame")
    return np.stack(crops), np.asarray(numbers), np.asarray(points68, np.float32)


def _pick(faces: list[tuple[FaceObs, AlignedFace]], hint: Sequence[float] | None) -> int:
    """Track id of the face nearest the box ``hint`` (x0, y0, x1, y1), or of the widest face."""
    if hint is None:
        return max(faces, key=lambda f: f[0].bbox[2] - f[0].bbox[0])[0].track
    cx, cy = (hint[0] + hint[2]) / 2, (hint[1] + hint[3]) / 2
    return min(faces, key=lambda f: float(np.hypot((f[0].bbox[0] + f[0].bbox[2]) / 2 - cx,
                                                   (f[0].bbox[1] + f[0].bbox[3]) / 2 - cy)))[0].track  # fmt: skip


def strcn_apex(grey: np.ndarray) -> int:
    """Seed 001's apex rule: ``argmax_t std(I_t - I_0)`` over ``grey`` ``(T, H, W)`` aligned frames (index)."""
    g = grey.astype(np.float32)
    if len(g) < 2:
        return 0
    return int(np.argmax((g - g[0]).reshape(len(g), -1).std(axis=1)))


def _apex_index(cfg: PreprocessConfig, sample: Sample, grey: np.ndarray, numbers: np.ndarray) -> int:
    """Index into the kept frames ``numbers`` of the apex (labelled, or by :func:`strcn_apex`)."""
    labelled = sample.apex if cfg.apex != "strcn" else None
    if labelled is None and cfg.apex == "label":
        raise PreprocessError(f"{sample.key} has no apex label; use apex: auto to detect it (seed 001's rule)")
    if labelled is None:
        return strcn_apex(grey)
    return int(np.argmin(np.abs(numbers - labelled)))


def prepare_sample(sample: Sample, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """All variants of one sample: input name -> ``(V, *shape)`` float32, plus ``variants`` and ``apex``.

    Raises :class:`SampleFailure` when the onset frame shows no face, PreprocessError for bad data.
    """
    if sample.flow is not None:
        return _flow_image(sample, cfg)
    crops, numbers, points68 = align_sample(sample, cfg)
    if len(crops) < 2:
        raise PreprocessError(
            f"{sample.key}: frames {sample.onset}..{numbers[-1]} give {len(crops)} crop(s) of the face; need 2 or more"
        )
    fps = float(sample.fps or 30.0)
    import cv2

    grey = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops])
    out: dict[str, list[np.ndarray]] = {}
    apexes, rng = [], np.random.default_rng([cfg.seed, int(hashlib.sha1(sample.key.encode()).hexdigest()[:8], 16)])
    magnified: dict[float, np.ndarray] = {}
    for alpha, ratio in cfg.variants:
        keep = keep_indices(len(crops), ratio, rng)
        if alpha not in magnified:
            magnified[alpha] = magnify_sequence(crops, alpha, fps)
        # EVM runs over the whole clip; the kept frames are picked from its output
        a = _apex_index(cfg, sample, grey[keep], numbers[keep])
        a = max(a, 1) if len(keep) > 1 else 0
        apexes.append(int(numbers[keep][a]))
        for k, v in model_input(cfg.input, cfg.input_settings(), magnified[alpha][keep], a, points68, fps).items():
            out.setdefault(k, []).append(v.astype(np.float32, copy=False))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["variants"] = np.asarray(cfg.variants, np.float32)
    arrays["apex"] = np.asarray(apexes, np.int64)
    return arrays


def _flow_image(sample: Sample, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    import cv2

    if cfg.input != "rcn":
        raise PreprocessError(f"flow images feed the RCN models (a 3-channel map); {cfg.input} needs clips")
    (name, shape), *_ = cfg.shapes.items()
    img = cv2.imread(str(sample.flow), cv2.IMREAD_COLOR)
    if img is None:
        raise PreprocessError(f"{sample.key}: cannot read flow image {sample.flow}")
    img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (shape[2], shape[1]), interpolation=cv2.INTER_AREA)
    x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    return {name: np.ascontiguousarray(x), "variants": np.asarray([(cfg.test_alpha, 1.0)], np.float32),
            "apex": np.zeros(1, np.int64)}  # fmt: skip


# ---------------------------------------------------------------- the cache


def default_cache_dir() -> Path:
    """The preprocessing cache: ``preprocess`` in the user cache folder (``~/.cache/realtime-mer``)."""
    return cache_dir() / "preprocess"


def sample_file(root: Path, cfg: PreprocessConfig, sample: Sample) -> Path:
    """Cache file of ``sample`` (``.npz``; ``.fail.txt`` next to it for a failed one)."""
    source = sample.flow or sample.video or (sample.frames[0].parent if sample.frames else "")
    h = hashlib.sha1(json.dumps([str(source), sample.onset, sample.apex, sample.offset]).encode()).hexdigest()[:10]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in sample.sample_id)
    return root / cfg.key() / sample.dataset / sample.subject / f"{safe}-{h}.npz"


def _fail_file(path: Path) -> Path:
    return path.with_suffix(".fail.txt")


def _work(sample: Sample, cfg: PreprocessConfig, path: Path) -> str | None:
    """Prepare and write one sample; returns the failure reason or None. Runs in a worker process."""
    try:
        arrays = prepare_sample(sample, cfg)
    except SampleFailure as e:
        path.parent.mkdir(parents=True, exist_ok=True)
        _fail_file(path).write_text(str(e))
        return str(e)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return None


def _init_worker() -> None:
    """One OpenCV thread a worker (the workers are the parallelism); MediaPipe's C++ logging to errors only."""
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class Prepared:
    """Preprocessed inputs of a dataset, every variant as one row.

    Attributes:
        samples: the samples that were prepared (failures left out), in dataset order.
        inputs: input name -> ``(M, *shape)`` float32, M rows over all variants.
        owner: ``(M,)`` index into ``samples`` of each row.
        variants: ``(M, 2)`` (alpha, keep ratio) of each row.
        test_rows: ``(len(samples),)`` row of each sample's test variant.
        failed: ``key: reason`` of the samples left out.
    """

    samples: list[Sample]
    inputs: dict[str, np.ndarray]
    owner: np.ndarray
    variants: np.ndarray
    test_rows: np.ndarray
    failed: list[str]

    def rows_of(self, sample_indices: np.ndarray, all_variants: bool) -> np.ndarray:
        """Rows of the given samples: every variant (training) or only the test variant."""
        if not all_variants:
            return self.test_rows[sample_indices]
        return np.flatnonzero(np.isin(self.owner, sample_indices))


def preprocess(
    dataset: Dataset,
    cfg: PreprocessConfig,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Prepared:
    """Prepare every sample of ``dataset`` (cached; ``workers`` processes) and load the results.

    Args:
        dataset: the samples.
        cfg: the preprocessing config (:func:`config_for`).
        cache_dir: root of the cache (default :func:`default_cache_dir`).
        workers: worker processes; 1 works in this process.
        progress: print a progress line to stderr.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    (root / cfg.key()).mkdir(parents=True, exist_ok=True)
    (root / cfg.key() / "config.json").write_text(json.dumps(asdict(cfg), indent=1, default=list))
    paths = [sample_file(root, cfg, s) for s in dataset.samples]
    todo = [i for i, p in enumerate(paths) if not p.is_file() and not _fail_file(p).is_file()]
    failed = 0
    with tqdm(
        total=len(todo),
        desc=f"preprocess {dataset.name} ({len(paths) - len(todo)} cached)",
        unit="sample",
        disable=not progress or not todo,
        file=sys.stderr,
    ) as bar:

        def tick(reason: str | None) -> None:
            nonlocal failed
            failed += reason is not None
            bar.set_postfix(without_face=failed, refresh=False)
            bar.update()

        if todo and (workers <= 1 or len(todo) == 1):
            for i in todo:
                tick(_work(dataset.samples[i], cfg, paths[i]))
        elif todo:
            ctx = mp.get_context("spawn")  # no fork of a process that may hold torch/MediaPipe threads
            with cf.ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker) as pool:
                futures = [pool.submit(_work, dataset.samples[i], cfg, paths[i]) for i in todo]
                for f in cf.as_completed(futures):
                    tick(f.result())
    return _load(dataset, paths)


def _load(dataset: Dataset, paths: list[Path]) -> Prepared:
    samples, failed, chunks, owner, variants, test_rows = [], [], {}, [], [], []
    row = 0
    for s, p in zip(dataset.samples, paths):
        if _fail_file(p).is_file():
            failed.append(f"{s.key}: {_fail_file(p).read_text().strip()}")
            continue
        with np.load(p) as z:
            arrays = {k: z[k] for k in z.files}
        v = arrays.pop("variants")
        arrays.pop("apex")
        for k, a in arrays.items():
            chunks.setdefault(k, []).append(a)
        owner.append(np.full(len(v), len(samples)))
        variants.append(v)
        test_rows.append(row)
        row += len(v)
        samples.append(s)
    if not samples:
        raise PreprocessError(
            f"no sample of {dataset.source or dataset.name} could be prepared: {'; '.join(failed[:3])}"
        )
    return Prepared(
        samples=samples,
        inputs={k: np.concatenate(v) for k, v in chunks.items()},
        owner=np.concatenate(owner),
        variants=np.concatenate(variants),
        test_rows=np.asarray(test_rows),
        failed=failed,
    )
