"""The synthetic sets written by ``realtime-mer synth`` (:mod:`realtime_mer.synth.dataset`).

One sample per planted micro-expression (macro movements and blinks are distractors for spotting,
not recognition samples). Frame numbers are the clip's 0-based video frames, as in the ground
truth; the optional CASME II-style frame folders (``img<frame + 1>.jpg``) are attached with that
shift. A clip may show two faces: ``extra["face"]`` and ``extra["bbox"]`` say which one moved.
"""

from __future__ import annotations

from pathlib import Path

from .base import Dataset, DatasetError, Missing, resolve_frames
from .classes import label_samples


def read_synth(path: str | Path, classes: str = "native", missing: Missing = "error") -> Dataset:
    """Micro-expression samples of a synthetic dataset folder (or its ``clips`` folder).

    Args:
        path: the folder given to ``realtime-mer synth --out``.
        classes: class scheme (:mod:`.classes`): native is negative/positive/surprise/others.
        missing: ``"error"`` or ``"skip"`` for samples whose frame folder is missing or short.
    """
    from realtime_mer.synth import DatasetError as SynthDatasetError
    from realtime_mer.synth import load_ground_truth

    try:
        clips = load_ground_truth(path)
    except SynthDatasetError as e:
        raise DatasetError(str(e)) from e
    items = []
    for clip in clips.values():
        for e in clip.events:
            if e.kind != "micro":
                continue
            if not clip.video.is_file() and clip.frames_dir is None:
                raise DatasetError(f"synthetic clip {clip.clip}: video {clip.video} is missing")
            face = clip.faces[e.face]
            items.append((e.label or "", dict(
                dataset="synth", subject=e.subject, sample_id=f"{clip.clip}_f{e.face}_{e.onset}",
                onset=e.onset, apex=e.apex, offset=e.offset, video=clip.video, fps=clip.fps, aus=e.aus,
                extra={"clip": clip.clip, "face": e.face, "bbox": face.bbox, "emotion": e.label,
                       "amplitude_px": e.amplitude_px, "frames_dir": clip.frames_dir},
            )))  # fmt: skip
    if not items:
        raise DatasetError(f"synthetic dataset {path} holds no micro-expression events")
    names, samples, excluded = label_samples("synth", classes, items)
    framed, skipped = resolve_frames(
        [s for s in samples if s.extra["frames_dir"]], lambda s: s.extra["frames_dir"], missing, -1
    )
    by_key = {s.key: s for s in framed}
    samples = [by_key.get(s.key, s) for s in samples if not s.extra["frames_dir"] or s.key in by_key]
    excluded += skipped
    return Dataset("synth", names, tuple(samples), str(path), tuple(excluded))
