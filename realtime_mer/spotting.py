"""Streaming micro-expression spotting (onset, apex, offset) and the MEGC interval metric.

Spotting, per face track, one call per aligned (optionally magnified) face crop:

1. **Grey.** The crop, ``(H, W)`` or ``(H, W, C)`` BGR, uint8 or float, becomes grey float32,
   scaled to the reference's mean brightness over the mask (``normalize_gain``: global exposure
   changes and flicker cancel). Every level below is in units of the statistic's own noise, so
   the image scale does not matter (uint8 0..255 or magnified float ~0..1 alike).
2. **Reference.** ``ref`` is a slow exponential moving average of the face (time constant
   ``ref_tau_s``; a plain running mean over the first frames), so slow drift does not accumulate.
   While a movement is in progress the reference is *frozen*: it stays the pre-onset face, and
   ``sigma`` below is the STRCN apex rule's ``std(I_t - I_onset)``. A micro-expression rises and
   *returns* to that face, so its end is sharp; so does a held macro-expression once it is let go.
3. **Statistic.** ``D = I_t - ref`` over the face mask (an ellipse inside the crop, or the
   caller's mask), cut into ``blocks`` (rows, cols); per block the standard deviation of ``D`` over
   its masked pixels; ``sigma(t)`` = mean of the ``top_k`` largest block values. A local 1-2 px
   mouth-corner movement fills a few blocks, where it stands far above the sensor noise, while a
   global std dilutes it over the whole face (on the test faces the blocks spot a 0.3 px
   movement that the global std misses). ``blocks=(1, 1), top_k=1`` is the plain STRCN
   ``std(I_t - ref)`` over the mask. Block stds ignore a uniform brightness change in a block.
4. **Noise floor.** A running robust level ``floor`` and ``spread`` of ``sigma`` while no
   movement is in progress: exponential averages (time constant ``floor_tau_s``) of ``sigma`` and
   of its absolute deviation (x 1.2533, a std for Gaussian noise), fed with ``sigma`` clipped to
   ``floor +- 3 spread`` so a stray spike cannot lift them; ``spread >= min_rel_spread * floor``.
   ``z(t) = (sigma - floor) / spread``. The first ``warmup_s`` seconds only learn the reference
   and the floor.
5. **Events.** A movement starts at the first frame with ``z >= low`` (onset). It ends at the
   last frame (offset) above ``max(low, end_frac * peak z)`` once ``z`` has stayed below that for
   ``end_hold_s`` (short dips are bridged; the relative level cuts long tails such as the
   band-pass ringing of a magnifier, or a face that does not quite return). No new movement
   starts until ``z`` is back below ``low``. A movement counts if its peak reaches
   ``z >= threshold``; apex = argmax ``sigma`` within it; score = peak ``z``. Its duration
   ``(offset - onset + 1) / fps``: below ``micro_min_s`` it is discarded (isolated spikes,
   1-frame glitches), up to ``micro_max_s`` it is ``"micro"``, longer ``"macro"`` (reported when
   ``report_macro``). A movement still in progress after ``macro_max_s`` is a lasting change
   (head pose, lighting, an expression held on): it is dropped and the spotter learns the face
   anew (warm-up).

Why not a lagged reference ``I_t - I_{t-k}``: it shows every movement twice, the second time when
the reference frame passes through it. Blinks last as long as micro-expressions: pass a mask
without the eyes to ignore them.

Costs O(pixels) per frame with pre-allocated buffers (no per-frame array allocation once built).
An interval is reported ``end_hold_s`` after its offset frame.

Metric (MEGC 2019-2022, REFERENCE.md section 6): :func:`interval_iou` on inclusive frame
intervals exactly as the official ``calc_iou``; :func:`match_intervals` matches each ground truth
at most once at IoU >= 0.5; :class:`SpotScore` counts are pooled over videos by ``+``/:func:`pool`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from realtime_mer.types import EventKind, Interval

_MAD_TO_STD = 1.2533  # mean absolute deviation -> standard deviation, Gaussian


@dataclass
class SpotConfig:
    """Spotting settings; durations in seconds, levels in units of the noise spread.

    Attributes:
        micro_min_s, micro_max_s: duration range of a micro-expression.
        macro_max_s: longest movement reported as a macro-expression; longer ones are dropped.
        report_macro: report macro-expressions too (else only micro).
        threshold: peak height above the floor, in spreads, that makes a movement an event.
        low: level (spreads above the floor) that marks onset and offset.
        end_frac: a movement also ends below this fraction of its peak height (so a face that
            does not quite return, or a long tail, still ends it).
        end_hold_s: how long ``z`` must stay below the end level to end a movement (bridges dips).
        ref_tau_s: time constant of the reference face's moving average.
        normalize_gain: scale each frame to the reference's masked mean brightness first.
        floor_tau_s: time constant of the noise floor and spread.
        min_rel_spread: smallest spread as a fraction of the floor.
        warmup_s: time spent learning reference and floor before spotting.
        blocks: (rows, cols) of the block grid over the crop.
        top_k: number of largest block stds averaged into ``sigma``.
        mask: ``"ellipse"`` (a face ellipse inside the crop) or ``"full"`` (the whole crop); a mask
            given to :class:`Spotter` overrides it.
        mask_axes: ellipse width and height as fractions of the crop's width and height.
        min_block_cover: a block counts only if at least this fraction of its pixels is in the mask.
        history_len: number of recent ``sigma`` values kept for display.
    """

    micro_min_s: float = 0.065
    micro_max_s: float = 0.5
    macro_max_s: float = 4.0
    report_macro: bool = True
    threshold: float = 8.0
    low: float = 3.0
    end_frac: float = 0.15
    end_hold_s: float = 0.03
    ref_tau_s: float = 1.0
    normalize_gain: bool = True
    floor_tau_s: float = 3.0
    min_rel_spread: float = 0.02
    warmup_s: float = 1.0
    blocks: tuple[int, int] = (8, 8)
    top_k: int = 3
    mask: Literal["ellipse", "full"] = "ellipse"
    mask_axes: tuple[float, float] = (0.85, 0.95)
    min_block_cover: float = 0.5
    history_len: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.micro_min_s < self.micro_max_s < self.macro_max_s:
            raise ValueError("durations must satisfy 0 < micro_min_s < micro_max_s < macro_max_s, got "
                             f"{self.micro_min_s}, {self.micro_max_s}, {self.macro_max_s}")
        if not 0 < self.low < self.threshold:
            raise ValueError(f"levels must satisfy 0 < low < threshold, got low={self.low}, "
                             f"threshold={self.threshold}")
        if not 0 <= self.end_frac < 1:
            raise ValueError(f"end_frac must be in [0, 1), got {self.end_frac}")
        for name in ("end_hold_s", "ref_tau_s", "floor_tau_s", "warmup_s", "min_rel_spread"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        rows, cols = self.blocks
        if rows < 1 or cols < 1:
            raise ValueError(f"blocks must be at least (1, 1), got {self.blocks}")
        if not 1 <= self.top_k <= rows * cols:
            raise ValueError(f"top_k must be in 1..{rows * cols} for blocks {self.blocks}, got {self.top_k}")
        if not all(0 < a <= 1 for a in self.mask_axes):
            raise ValueError(f"mask_axes are fractions of the crop in (0, 1], got {self.mask_axes}")
        if not 0 < self.min_block_cover <= 1:
            raise ValueError(f"min_block_cover must be in (0, 1], got {self.min_block_cover}")
        if self.history_len < 1:
            raise ValueError(f"history_len must be at least 1, got {self.history_len}")


@dataclass(frozen=True)
class SigmaTrace:
    """Recent spotting signal for display, oldest first, all ``(N,)``.

    ``sigma`` is the statistic (NaN on the first frame after a (re)start), ``floor``/``spread`` the
    noise floor then; the event level is ``floor + threshold * spread``. ``floor`` and ``spread``
    are NaN during warm-up.
    """

    index: np.ndarray
    t: np.ndarray
    sigma: np.ndarray
    floor: np.ndarray
    spread: np.ndarray


def ellipse_mask(shape: tuple[int, int], axes: tuple[float, float] = (0.85, 0.95)) -> np.ndarray:
    """``(H, W)`` bool face mask: a centred ellipse whose width and height are ``axes`` of the crop's."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    rx, ry = axes[0] * w / 2, axes[1] * h / 2
    return ((xx - (w - 1) / 2) / rx) ** 2 + ((yy - (h - 1) / 2) / ry) ** 2 <= 1.0


class Spotter:
    """Streaming spotter of one face track (see the module docstring for the algorithm).

    Args:
        fps: frame rate of the track (frames per second); durations are converted with it.
        config: settings.
        shape: crop shape, ``(H, W)`` or ``(H, W, C)`` with C in 1 or 3.
        mask: optional ``(H, W)`` bool face mask overriding ``config.mask``.
    """

    def __init__(self, fps: float, config: SpotConfig | None = None, shape: tuple[int, ...] = (128, 128, 3),
                 mask: np.ndarray | None = None) -> None:
        self.config = cfg = config or SpotConfig()
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
            raise ValueError(f"shape must be (H, W) or (H, W, C) with C 1 or 3, got {shape}")
        self.shape = tuple(shape)
        h, w = shape[:2]
        rows, cols = cfg.blocks
        if h < rows or w < cols:
            raise ValueError(f"crop {h}x{w} is smaller than the block grid {cfg.blocks}")
        if mask is None:
            mask = ellipse_mask((h, w), cfg.mask_axes) if cfg.mask == "ellipse" else np.ones((h, w), bool)
        mask = np.asarray(mask)
        if mask.shape != (h, w):
            raise ValueError(f"mask shape {mask.shape} does not match the crop {(h, w)}")
        self._mask = mask.astype(bool).astype(np.float32)
        self._mask_flat = self._mask.reshape(-1)
        cover = cv2.resize(self._mask, (cols, rows), interpolation=cv2.INTER_AREA)
        valid = cover >= cfg.min_block_cover
        if valid.sum() < cfg.top_k:
            raise ValueError(f"only {int(valid.sum())} blocks of {cfg.blocks} are at least "
                             f"{cfg.min_block_cover:.0%} inside the mask; need top_k={cfg.top_k}: "
                             "use a larger mask or fewer blocks")
        self._inv_cover = np.where(valid, 1.0 / np.maximum(cover, 1e-6), 0.0).astype(np.float32)
        # pre-allocated work buffers
        self._grey = np.zeros((h, w), np.float32)
        self._grey_u8 = np.zeros((h, w), np.uint8)
        self._colour = np.zeros((h, w, 3), np.float32)
        self._ref = np.zeros((h, w), np.float32)
        self._diff = np.zeros((h, w), np.float32)
        self._sq = np.zeros((h, w), np.float32)
        self._m1 = np.zeros((rows, cols), np.float32)
        self._m2 = np.zeros((rows, cols), np.float32)
        self._block_std = self._m2.reshape(-1)  # a view of _m2
        n = cfg.history_len
        self._h_index = np.zeros(n, np.int64)
        self._h_t = np.zeros(n, np.float64)
        self._h_sigma = np.zeros(n, np.float32)
        self._h_floor = np.zeros(n, np.float32)
        self._h_spread = np.zeros(n, np.float32)
        self._h_next = 0
        self._h_count = 0
        self._last_index = -1
        self.set_fps(fps)
        self._restart()

    # -- configuration -------------------------------------------------------------------------

    def set_fps(self, fps: float) -> None:
        """Change the frame rate (e.g. once the stream's real rate is measured); state is kept."""
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        cfg = self.config
        self.fps = float(fps)
        self._ref_rate = 1.0 - np.exp(-1.0 / (cfg.ref_tau_s * fps))
        self._floor_rate = 1.0 - np.exp(-1.0 / (cfg.floor_tau_s * fps))
        self._warmup_frames = max(4, int(round(cfg.warmup_s * fps)))
        self._end_hold = max(1, int(round(cfg.end_hold_s * fps)))
        self._macro_max_frames = cfg.macro_max_s * fps

    def _restart(self) -> None:
        """Forget reference, floor and any movement in progress: learn them again (warm-up)."""
        self._seen = 0  # frames since (re)start
        self._floor = 0.0
        self._spread = 0.0
        self._floor_n = 0
        self._active = False
        self._armed = True  # a new movement may start (False while a tail is above ``low``)
        self._below = 0
        self._onset = self._apex = self._last_above = -1
        self._t_onset = self._t_apex = self._t_last_above = 0.0
        self._peak = 0.0

    # -- per frame -------------------------------------------------------------------------------

    def _to_grey(self, image: np.ndarray) -> None:
        """Write ``image`` as grey float32 into ``self._grey``."""
        if image.shape != self.shape and not (image.ndim == 2 and self.shape[2:] == (1,)
                                              and image.shape == self.shape[:2]):
            raise ValueError(f"image shape {image.shape} does not match the spotter's {self.shape}; "
                             "make one Spotter per crop size")
        if image.dtype.kind not in "uif":
            raise ValueError(f"image dtype must be integer or float, got {image.dtype}")
        if image.ndim == 2 or image.shape[2] == 1:
            np.copyto(self._grey, image.reshape(self._grey.shape), casting="unsafe")
        elif image.dtype == np.uint8:
            cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, dst=self._grey_u8)
            np.copyto(self._grey, self._grey_u8, casting="unsafe")
        elif image.dtype == np.float32:
            cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, dst=self._grey)
        else:
            np.copyto(self._colour, image, casting="unsafe")
            cv2.cvtColor(self._colour, cv2.COLOR_BGR2GRAY, dst=self._grey)

    def _statistic(self) -> float:
        """Mean of the ``top_k`` largest masked block stds of ``grey - ref``."""
        np.subtract(self._grey, self._ref, out=self._diff)
        np.multiply(self._diff, self._mask, out=self._diff)
        np.multiply(self._diff, self._diff, out=self._sq)
        rows, cols = self.config.blocks
        cv2.resize(self._diff, (cols, rows), dst=self._m1, interpolation=cv2.INTER_AREA)
        cv2.resize(self._sq, (cols, rows), dst=self._m2, interpolation=cv2.INTER_AREA)
        np.multiply(self._m1, self._inv_cover, out=self._m1)
        np.multiply(self._m2, self._inv_cover, out=self._m2)
        np.multiply(self._m1, self._m1, out=self._m1)
        np.subtract(self._m2, self._m1, out=self._m2)  # block variance
        np.maximum(self._m2, 0.0, out=self._m2)
        np.sqrt(self._m2, out=self._m2)
        self._block_std.sort()
        return float(self._block_std[-self.config.top_k:].mean())

    def update(self, index: int, t: float, image: np.ndarray) -> list[Interval]:
        """Feed frame ``index`` (time ``t`` s) of the track; returns the intervals completed now.

        ``image``: the aligned crop, ``shape`` as given at construction, uint8 or float
        (magnified frames may overshoot [0, 1]). ``index`` must increase (gaps are dropped frames).
        """
        if index <= self._last_index:
            raise ValueError(f"frame {index} after frame {self._last_index}: indices must increase")
        self._to_grey(image)
        t = float(t)
        if self._seen == 0:  # (re)start: this frame is the first reference
            if not np.isfinite(self._grey).all():
                raise ValueError(f"frame {index} has NaN or infinite pixels")
            self._ref[:] = self._grey
            self._seen = 1
            self._last_index = index
            self._record(index, t, np.nan)
            return []
        if self.config.normalize_gain:
            self._match_gain()
        x = self._statistic()
        if not np.isfinite(x):
            raise ValueError(f"frame {index} has NaN or infinite pixels")
        self._last_index = index
        self._seen += 1
        out: list[Interval] = []
        if self._seen <= self._warmup_frames:
            if self._seen > self._warmup_frames // 2:
                self._learn_floor(x)
        else:
            iv = self._track(index, t, x)
            if iv is not None:
                out.append(iv)
        self._record(index, t, x)
        if self._active and index - self._onset + 1 > self._macro_max_frames:
            self._restart()  # a lasting change (head pose, lighting): drop it, learn the face anew
        elif not self._active:  # the reference is frozen during a movement
            cv2.accumulateWeighted(self._grey, self._ref, max(self._ref_rate, 1.0 / self._seen))
        return out

    def _match_gain(self) -> None:
        """Scale ``grey`` so its masked mean equals the reference's (global exposure changes)."""
        s_img = float(np.dot(self._grey.reshape(-1), self._mask_flat))
        s_ref = float(np.dot(self._ref.reshape(-1), self._mask_flat))
        if s_img > 0 and s_ref > 0:
            np.multiply(self._grey, s_ref / s_img, out=self._grey)

    def _track(self, index: int, t: float, x: float) -> Interval | None:
        """One step of the movement state machine on statistic ``x``; a finished interval or None."""
        cfg = self.config
        z = (x - self._floor) / self._spread
        if not self._active:
            if z < cfg.low:
                self._armed = True
                self._learn_floor(x)
                return None
            if not self._armed:  # still the tail of the last movement
                return None
            self._active = True
            self._onset = self._apex = self._last_above = index
            self._t_onset = self._t_apex = self._t_last_above = t
            self._peak, self._below = x, 0
        elif z >= max(cfg.low, cfg.end_frac * (self._peak - self._floor) / self._spread):
            self._last_above, self._t_last_above, self._below = index, t, 0
            if x > self._peak:
                self._peak, self._apex, self._t_apex = x, index, t
        else:
            self._below += 1
            if self._below >= self._end_hold:
                self._active = False
                self._armed = z < cfg.low
                return self._close()
        return None

    def flush(self) -> list[Interval]:
        """End of stream: the movement in progress, if it qualifies, as a completed interval."""
        if not self._active:
            return []
        self._active = False
        iv = self._close()
        return [] if iv is None else [iv]

    def _learn_floor(self, x: float) -> None:
        """One step of the running noise floor and spread (cumulative at first, then EMA)."""
        self._floor_n += 1
        rate = max(self._floor_rate, 1.0 / self._floor_n)
        if self._floor_n > 1:
            band = 3.0 * self._spread
            x = min(max(x, self._floor - band), self._floor + band)
        dev = abs(x - self._floor) * _MAD_TO_STD if self._floor_n > 1 else 0.0
        self._floor += rate * (x - self._floor)
        self._spread += rate * (dev - self._spread)
        self._spread = max(self._spread, self.config.min_rel_spread * abs(self._floor), 1e-12)

    def _close(self) -> Interval | None:
        """The finished movement as an Interval, or None when too short, too weak or unreported."""
        cfg = self.config
        score = (self._peak - self._floor) / self._spread
        frames = self._last_above - self._onset + 1
        seconds = frames / self.fps
        if score < cfg.threshold or seconds < cfg.micro_min_s:
            return None
        kind: EventKind = "micro" if seconds <= cfg.micro_max_s else "macro"
        if kind == "macro" and not cfg.report_macro:
            return None
        return Interval(self._onset, self._apex, self._last_above, self._t_onset, self._t_apex,
                        self._t_last_above, kind, float(score))

    # -- display ---------------------------------------------------------------------------------

    def _record(self, index: int, t: float, x: float) -> None:
        i = self._h_next
        warm = self._seen > self._warmup_frames
        self._h_index[i] = index
        self._h_t[i] = t
        self._h_sigma[i] = x
        self._h_floor[i] = self._floor if warm else np.nan
        self._h_spread[i] = self._spread if warm else np.nan
        self._h_next = (i + 1) % self.config.history_len
        self._h_count = min(self._h_count + 1, self.config.history_len)

    def history(self, n: int | None = None) -> SigmaTrace:
        """The last ``n`` (default: all kept) values of the spotting signal, oldest first (copies)."""
        count = self._h_count if n is None else max(0, min(n, self._h_count))
        order = (self._h_next - count + np.arange(count)) % self.config.history_len
        return SigmaTrace(self._h_index[order], self._h_t[order], self._h_sigma[order],
                          self._h_floor[order], self._h_spread[order])

    @property
    def sigma(self) -> np.ndarray:
        """``(N,)`` float32 recent ``sigma`` values, oldest first (a copy; NaN on a first frame)."""
        return self.history().sigma

    @property
    def active(self) -> bool:
        """Whether a movement is in progress."""
        return self._active


# -- the MEGC metric ---------------------------------------------------------------------------------

Span = Interval | tuple[int, int] | tuple[int, int, int] | tuple[int, int, int, str]


def _parts(s: Span) -> tuple[int, int | None, int, str | None]:
    """``(onset, apex or None, offset, kind or None)`` of an Interval or a tuple
    ``(onset, offset)``, ``(onset, apex, offset)`` or ``(onset, apex, offset, kind)``."""
    if isinstance(s, Interval):
        return s.onset, s.apex, s.offset, s.kind
    if len(s) == 2:
        return int(s[0]), None, int(s[1]), None
    if len(s) == 3:
        return int(s[0]), int(s[1]), int(s[2]), None
    if len(s) == 4:
        return int(s[0]), int(s[1]), int(s[2]), str(s[3])
    raise ValueError(f"an interval is an Interval or (onset, offset), (onset, apex, offset) or "
                     f"(onset, apex, offset, kind); got {s!r}")


def interval_iou(a: Span, b: Span) -> float:
    """MEGC IoU of two inclusive frame intervals, exactly as the official ``calc_iou``.

    ``inter = max(0, min(e1, e2) - max(s1, s2)) + 1``, ``union = len1 + len2 - inter`` with
    ``len = e - s + 1``; 0 when either interval has ``e <= s``. Quirk kept from the official
    code: disjoint intervals share one phantom frame (IoU ``1 / union``, at most 1/3), so a
    threshold of 0.5 is unaffected.
    """
    s1, _, e1, _ = _parts(a)
    s2, _, e2, _ = _parts(b)
    inter = max(0, min(e1, e2) - max(s1, s2)) + 1
    union = (e1 - s1 + 1) + (e2 - s2 + 1) - inter
    if e1 <= s1 or e2 <= s2 or union <= 0:
        return 0.0
    return inter / union


@dataclass(frozen=True)
class SpotScore:
    """Spotting counts and the MEGC precision, recall and F1; add scores to pool over videos."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: SpotScore) -> SpotScore:
        return SpotScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def pool(scores: Iterable[SpotScore]) -> SpotScore:
    """Counts summed over videos (the MEGC rule: pooled, not averaged per video)."""
    return sum(scores, SpotScore())


@dataclass(frozen=True)
class Match:
    """Result of :func:`match_intervals` on one video.

    Attributes:
        pairs: ``(prediction index, truth index, IoU)`` of each match.
        score: TP = matched predictions, FP = the other predictions, FN = unmatched truths.
        apex_errors: predicted minus true apex frame of each pair where both have an apex.
    """

    pairs: tuple[tuple[int, int, float], ...]
    score: SpotScore
    apex_errors: tuple[int, ...]


def match_intervals(pred: Sequence[Span], truth: Sequence[Span], iou: float = 0.5,
                    by_kind: bool = False) -> Match:
    """Match predicted to true intervals of one video, each truth and prediction at most once.

    A pair may match when its :func:`interval_iou` is ``>= iou`` (and, with ``by_kind``, both
    have the same kind); pairs are taken greedily by decreasing IoU.
    """
    p = [_parts(x) for x in pred]
    g = [_parts(x) for x in truth]
    if by_kind and any(x[3] is None for x in p + g):
        raise ValueError("by_kind needs a kind on every interval: pass Interval or (onset, apex, offset, kind)")
    cand = []
    for i, a in enumerate(p):
        for j, b in enumerate(g):
            if by_kind and a[3] != b[3]:
                continue
            v = interval_iou(pred[i], truth[j])
            if v >= iou:
                cand.append((v, i, j))
    cand.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_p: set[int] = set()
    used_g: set[int] = set()
    pairs = []
    for v, i, j in cand:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            pairs.append((i, j, v))
    apex = tuple(p[i][1] - g[j][1] for i, j, _ in pairs if p[i][1] is not None and g[j][1] is not None)
    tp = len(pairs)
    return Match(tuple(pairs), SpotScore(tp, len(p) - tp, len(g) - tp), apex)
