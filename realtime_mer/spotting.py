"""Streaming micro-expression spotting (onset, apex, offset) and the MEGC interval metric.

Spotting, per face track, one call per aligned face crop (the raw crop spots best: a magnifier
amplifies the sensor and compression noise as much as the movement):

1. **Grey.** The crop, ``(H, W)`` or ``(H, W, C)`` BGR, uint8 or float, becomes grey float32,
   scaled to the reference's mean brightness over the mask (``normalize_gain``: global exposure
   changes and flicker cancel). Every level below is in units of the statistic's own noise, so
   the image scale does not matter. The statistic watches the running mean of the last
   ``smooth_s`` of frames, at least two (2 frames at 15-50 fps, 3 at 60, 10 at 200): it averages
   the sensor, compression and registration noise of single frames, while an expression lasts
   many frames; the intervals are shifted back by the mean's lag, ``(n - 1) / 2`` frames.
2. **Reference.** ``ref`` is an exponential moving average of the face (time constant
   ``ref_tau_s``; a plain running mean over the first frames), so slow drift does not accumulate.
   While a movement is in progress the reference is *frozen*: it stays the pre-onset face (the
   STRCN apex rule's ``I_onset``). A micro-expression rises and *returns* to that face. After
   a keyframe of predicted video (an H.264 I-frame, :meth:`Spotter.keyframe`), whose coding noise
   is new over the whole face, the first frame outside a movement becomes the reference at once.
3. **Block statistic.** ``D = I_t - ref`` over the face mask (an ellipse inside the crop, or the
   caller's mask), cut into ``blocks`` (rows, cols) that overlap by half (``block_step`` 2: a
   grid of cells of half the block size, each block ``2 x 2`` cells, stride one cell, so a
   movement on a block border still fills one block); per block ``b`` the standard deviation
   ``s_b`` of ``D`` over its masked pixels. A local 1-2 px movement fills a few blocks, where it
   stands far above the noise, while a global std dilutes it over the whole face.
4. **Per-block noise.** Each block has its own noise level: residual misalignment makes ``s_b``
   grow with the block's texture (on the synthetic set ``mean s_b ~ 0.06-0.15 px x gradient +
   sensor noise``, correlation ~0.9), so a textured block (eyes, glasses, mouth) would drown a
   brow or cheek movement in a global threshold. A running level ``m_b`` per block
   (exponential average, time constant ``floor_tau_s``, of every frame after the warm-up, each value
   clipped to ``m_b (1 +- 3 rel)``) and one relative spread ``rel`` (the same average of the
   median over blocks of ``|s_b / m_b - 1|`` x 1.4826, at least ``min_rel_spread``) give
   ``z_b = (s_b / m_b - 1) / rel`` and the statistic ``sigma(t)`` = mean of the ``top_k``
   largest ``z_b``, in noise units. The first ``warmup_s`` seconds only learn reference and levels.
   The levels keep being learned during a movement, against a second reference that keeps
   following the face (the reference itself is frozen, step 2): the few warm-up frames, and a
   face that slowly changes, would otherwise leave the levels too low and hold the spotter in
   one endless movement from the end of the warm-up on (seen on the synthetic set: its
   statistic climbed from 4 to 9 over the first second while the levels stood still).
5. **Events.** A movement starts at the first frame with ``sigma >= low``. It ends once
   ``sigma`` has stayed below ``max(low, end_frac * peak)`` for ``end_hold_s`` (short dips are
   bridged; the relative level also ends a face that does not quite return, e.g. after video
   compression). No new movement starts until ``sigma`` is back below ``low`` (levels are still
   learned meanwhile, so a raised level cannot lock the spotter). A movement counts if its peak
   reaches ``threshold`` and it stayed above ``low`` for at least ``micro_min_s`` and at least
   two frames, not counting the running mean's spread (isolated spikes, 1-frame glitches are
   dropped at any rate; a weak movement is above ``low`` for a small part of its duration only, so
   a long minimum would drop the weak movements of fast cameras); apex = argmax ``sigma``;
   score = peak.
6. **Onset and offset** are placed from the half-maximum crossings (interpolated) of ``sigma``
   around the apex: for the raised-cosine time course of an expression the half-maximum falls
   midway between onset and apex (apex and offset), so ``onset = 2 t_half_rise - apex`` and
   ``offset = 2 t_half_fall - apex``; a fixed level would cut weak movements short and stretch
   strong ones. Its duration ``(offset - onset) / fps`` (the ground truth's convention) up to
   ``micro_max_s`` is ``"micro"``, longer ``"macro"`` (reported when ``report_macro``); one placed
   up to ``micro_slack_s`` longer is still ``"micro"`` when its displacement (step 9) is within
   ``micro_max_iod``: the placement is off by a few frames, and a movement that subtle is a
   micro-expression (3.9 % of CASME II's are labelled longer than 0.5 s). A movement
   still in progress after ``macro_max_s`` (an expression held on, a face that keeps moving) is
   reported then as a ``"macro"`` from its onset to that frame, and the spotter learns the face
   anew (warm-up), so a held expression becomes the new neutral. At the end of the stream a
   movement is reported only if it has already fallen below half its peak.
7. **Blinks** last as long as micro-expressions. Given the eye fissures (``eyes`` mask, e.g.
   :func:`eye_mask` of the track's first landmarks), a movement of micro length during which the
   fissures change by at least ``blink_level`` of their own contrast (rms of ``D`` over the
   fissures / std of the reference there: 0.9-2.0 for the synthetic blinks, up to 0.8 for
   micro-expressions with lid movements such as a 3 px AU7, hence 0.85) is a blink and is not
   reported; so is such
   a movement up to ``blink_max_s`` (a blink the half-peak placement stretched past micro length).

8. **Repeated movements** are not micro-expressions. Talking opens and closes the mouth several
   times a second, each syllable as short as a micro-expression; chewing and tics repeat too. A
   micro-expression is a single, isolated movement. The pattern of each movement (its block
   scores at the apex above ``low``, ``max(z_b - low, 0)``), also of one too short to report (a
   syllable the statistic sees above ``low`` for a frame is the mouth moving all the same), is
   kept for ``repeat_window_s``; a movement whose pattern is like one of those (cosine similarity
   at least ``repeat_similarity``, over the blocks in use) of at least a third of its strength
   repeats it and is not reported as micro (a macro-length one still is a macro); blinks are not
   kept. Each block also keeps a count of the movements it took part in (``z_b`` at least ``low`` and a
   quarter of the peak), decaying with the time constant ``busy_tau_s``; a block whose count
   reaches ``busy_level`` is left out of the statistic while it stays there (it is still counted
   when it moves with a movement of other blocks, so it stays busy while the talking goes on), so
   a micro-expression elsewhere on the face, e.g. of the brows while the person talks, is still
   seen on its own. The first movement of a bout is not yet a repeat: the rule works from the
   past only, so no event waits for the future.
9. **Large short movements** are not micro-expressions either: a micro-expression is subtle, a
   syllable, a grimace flashed on purpose or a gesture is not. Given the inter-ocular distance of
   the crop (``iod_px``), the displacement of a micro-length movement is measured once, when it
   closes: DIS optical flow from the reference to the face at the apex, averaged over cells of an
   eighth of the inter-ocular distance, its largest cell inside the mask. Above ``micro_max_iod``
   inter-ocular distances (0.025: the planted micro-expressions of the development sets, 0.5-3 px
   at a 200 px wide face, measure 0.003-0.024, 99 % of them below 0.021; the first syllables of
   speech that pass the other rules 0.009-0.03) the movement is not reported as micro.
10. **Head movements.** The similarity that aligns the crops cannot undo the foreshortening of a
   nod or a turn, which leaves a smooth, nearly affine field over the whole face; an expression
   moves parts of it. A movement whose largest 5 % of flow vectors (the same flow as step 9) one
   affine motion explains to a share of ``rigid_share`` or more is the head moving: it is not
   reported, micro or macro.

Why not a lagged reference ``I_t - I_{t-k}``: it shows every movement twice, the second time when
the reference frame passes through it.

Costs O(pixels) per frame with pre-allocated buffers (no per-frame array allocation once built).
An interval is reported ``end_hold_s`` after the frame where ``sigma`` fell below its end level
(plus the running mean's lag).

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

from .config import settings

_MAD_TO_STD = 1.4826  # median absolute deviation -> standard deviation, Gaussian
_PATTERNS = 16  # movement patterns kept for the repeat rule (more than fit in repeat_window_s of speech)


@settings
class SpotConfig:
    """Spotting settings; durations in seconds, levels in units of the noise (see the module docstring).

    Attributes:
        micro_min_s: shortest time a movement must stay above ``low`` (beyond the running mean's
            spread) to count, at least two frames.
        micro_max_s: longest micro-expression (longer movements are macro).
        macro_max_s: longest movement reported as a macro-expression; longer ones are dropped.
        report_macro: report macro-expressions too (else only micro).
        threshold: peak of ``sigma`` that makes a movement an event.
        low: level of ``sigma`` that starts a movement (and re-arms the spotter).
        end_frac: a movement also ends below this fraction of its peak (so a face that does not
            quite return, or a long tail, still ends it).
        end_hold_s: how long ``sigma`` must stay below the end level to end a movement (bridges dips).
        ref_tau_s: time constant of the reference face's moving average.
        smooth_s: length of the running mean over frames taken before the statistic (averages the
            sensor, compression and registration noise), rounded to frames but at least two (one
            alone leaves H.264's frame-to-frame noise in); 0 turns it off (one frame).
        normalize_gain: scale each frame to the reference's masked mean brightness first.
        floor_tau_s: time constant of the per-block noise levels and of the relative spread.
        min_rel_spread: smallest relative spread ``rel`` of the block stds.
        warmup_s: time spent learning reference and noise levels before spotting.
        blocks: (rows, cols) of the block grid over the crop (the block size is the crop / blocks).
        block_step: cells per block side; blocks step by one cell, so 2 gives half-overlapping
            blocks, ``(rows * 2 - 1, cols * 2 - 1)`` of them; 1 gives the plain grid.
        top_k: number of largest block scores averaged into ``sigma``.
        blink_level: a movement of micro length whose eye fissures change by this fraction of
            their contrast is a blink (needs an ``eyes`` mask); 0 turns the rule off.
        blink_max_s: longest movement the blink rule applies to (the half-peak placement can
            stretch a blink beyond ``micro_max_s``; longer movements with the eyes closing, such
            as a smile with a squint, are kept).
        mask: ``"ellipse"`` (a face ellipse inside the crop) or ``"full"`` (the whole crop); a mask
            given to :class:`Spotter` overrides it.
        mask_axes: ellipse width and height as fractions of the crop's width and height.
        min_block_cover: a block counts only if at least this fraction of its pixels is in the mask.
        history_len: number of recent ``sigma`` values kept (display, onset/offset placement).
        repeat_window_s: how long a movement's pattern is kept to recognise its repeats (step 8), s.
        repeat_similarity: cosine similarity of two movements' block patterns that makes the later
            one a repeat (not micro); 0 turns the rule off.
        busy_tau_s: time constant of the per-block counts of recent movements, s.
        busy_level: count at which a block is left out of the statistic (0: never).
        micro_max_iod: largest displacement of a micro-expression, inter-ocular distances (step 9;
            needs ``iod_px``); 0 turns the rule off.
        micro_slack_s: a movement placed up to this much longer than ``micro_max_s`` is still a
            micro-expression when its displacement is within ``micro_max_iod`` (the onset and
            offset placement's error; needs ``iod_px``), s; 0 turns this off.
        rigid_share: share of a movement's flow explained by one affine motion that makes it a
            head movement, not reported (step 10); 0 turns the rule off.
        min_move_iod: smallest displacement of an expression, inter-ocular distances (step 9;
            needs ``iod_px``): below it nothing moved (0 turns the rule off).
    """

    micro_min_s: float = 0.02
    micro_max_s: float = 0.5
    macro_max_s: float = 4.0
    report_macro: bool = True
    threshold: float = 4.5
    low: float = 4.0
    end_frac: float = 0.5
    end_hold_s: float = 0.03
    ref_tau_s: float = 0.5
    smooth_s: float = 0.05
    normalize_gain: bool = True
    floor_tau_s: float = 3.0
    min_rel_spread: float = 0.05
    warmup_s: float = 0.5
    blocks: tuple[int, int] = (8, 8)
    top_k: int = 6
    block_step: int = 2
    blink_level: float = 0.85
    blink_max_s: float = 1.0
    mask: Literal["ellipse", "full"] = "ellipse"
    mask_axes: tuple[float, float] = (1.0, 1.0)
    min_block_cover: float = 0.5
    history_len: int = 1024
    repeat_window_s: float = 1.0
    repeat_similarity: float = 0.7
    busy_tau_s: float = 2.0
    busy_level: float = 0.6
    micro_max_iod: float = 0.025
    micro_slack_s: float = 0.1
    rigid_share: float = 0.93
    min_move_iod: float = 0.002

    def __post_init__(self) -> None:
        if not 0 < self.micro_min_s < self.micro_max_s < self.macro_max_s:
            raise ValueError(
                "durations must satisfy 0 < micro_min_s < micro_max_s < macro_max_s, got "
                f"{self.micro_min_s}, {self.micro_max_s}, {self.macro_max_s}"
            )
        if not 0 < self.low < self.threshold:
            raise ValueError(f"levels must satisfy 0 < low < threshold, got low={self.low}, threshold={self.threshold}")
        if not 0 <= self.end_frac < 1:
            raise ValueError(f"end_frac must be in [0, 1), got {self.end_frac}")
        if self.smooth_s < 0:
            raise ValueError(f"smooth_s must be >= 0 (0 = one frame), got {self.smooth_s}")
        for name in ("end_hold_s", "ref_tau_s", "floor_tau_s", "warmup_s", "min_rel_spread"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.blink_max_s <= 0:
            raise ValueError(f"blink_max_s must be positive, got {self.blink_max_s}")
        if self.blink_level < 0:
            raise ValueError(f"blink_level must be >= 0 (0 = off), got {self.blink_level}")
        rows, cols = self.blocks
        if rows < 1 or cols < 1:
            raise ValueError(f"blocks must be at least (1, 1), got {self.blocks}")
        if self.block_step < 1:
            raise ValueError(f"block_step must be at least 1, got {self.block_step}")
        if not 1 <= self.top_k <= rows * cols:
            raise ValueError(f"top_k must be in 1..{rows * cols} for blocks {self.blocks}, got {self.top_k}")
        if not all(0 < a <= 1 for a in self.mask_axes):
            raise ValueError(f"mask_axes are fractions of the crop in (0, 1], got {self.mask_axes}")
        if not 0 < self.min_block_cover <= 1:
            raise ValueError(f"min_block_cover must be in (0, 1], got {self.min_block_cover}")
        if self.history_len < 8:
            raise ValueError(f"history_len must be at least 8, got {self.history_len}")
        if self.micro_max_iod < 0:
            raise ValueError(f"micro_max_iod must be >= 0 (0 = off), got {self.micro_max_iod}")
        if self.micro_slack_s < 0:
            raise ValueError(f"micro_slack_s must be >= 0 (0 = off), got {self.micro_slack_s}")
        if self.min_move_iod < 0 or self.min_move_iod >= (self.micro_max_iod or np.inf):
            raise ValueError(
                f"min_move_iod must be >= 0 and below micro_max_iod, got {self.min_move_iod}, {self.micro_max_iod}"
            )
        if not 0 <= self.rigid_share <= 1:
            raise ValueError(f"rigid_share must be in [0, 1] (0 = off), got {self.rigid_share}")
        if self.repeat_window_s <= 0 or self.busy_tau_s <= 0:
            raise ValueError(
                f"repeat_window_s and busy_tau_s must be positive, got {self.repeat_window_s}, {self.busy_tau_s}"
            )
        if not 0 <= self.repeat_similarity <= 1 or self.busy_level < 0:
            raise ValueError(
                "repeat_similarity must be in [0, 1] and busy_level >= 0 (0 = off), got "
                f"{self.repeat_similarity}, {self.busy_level}"
            )


@dataclass(frozen=True)
class SigmaTrace:
    """Recent spotting signal for display, oldest first, all ``(N,)``.

    ``sigma`` is the statistic in noise units (NaN on the first frame after a (re)start; compare
    it with ``SpotConfig.threshold``), ``ready`` is False during warm-up.
    """

    index: np.ndarray
    t: np.ndarray
    sigma: np.ndarray
    ready: np.ndarray


def ellipse_mask(shape: tuple[int, int], axes: tuple[float, float] = (0.85, 0.95)) -> np.ndarray:
    """``(H, W)`` bool face mask: a centred ellipse whose width and height are ``axes`` of the crop's."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    rx, ry = axes[0] * w / 2, axes[1] * h / 2
    return ((xx - (w - 1) / 2) / rx) ** 2 + ((yy - (h - 1) / 2) / ry) ** 2 <= 1.0


def eye_mask(shape: tuple[int, int], points68: np.ndarray, margin_px: int = 2) -> np.ndarray:
    """``(H, W)`` bool mask of the two eye fissures: the polygons of points 36-41 and 42-47
    (``points68`` ``(68, 2)`` in crop pixels), grown by ``margin_px``."""
    pts = np.asarray(points68, np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise ValueError(f"points68 must be a finite (68, 2) array of crop pixels, got shape {pts.shape}")
    m = np.zeros(shape, np.uint8)
    for a in (36, 42):
        cv2.fillPoly(m, [np.round(pts[a : a + 6]).astype(np.int32)], 1)
    if margin_px > 0:
        return cv2.dilate(m, np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)).astype(bool)
    return m.astype(bool)


def inter_ocular(points68: np.ndarray) -> float:
    """Distance between the eye centres (means of points 36-41 and 42-47 of ``points68`` ``(68, 2)``), px."""
    pts = np.asarray(points68, np.float64)
    return float(np.hypot(*(pts[42:48].mean(0) - pts[36:42].mean(0))))


class Spotter:
    """Streaming spotter of one face track (see the module docstring for the algorithm).

    Args:
        fps: frame rate of the track (frames per second); durations are converted with it.
        config: settings.
        shape: crop shape, ``(H, W)`` or ``(H, W, C)`` with C in 1 or 3.
        mask: optional ``(H, W)`` bool face mask overriding ``config.mask``.
        eyes: optional ``(H, W)`` bool mask of the eye fissures (:func:`eye_mask`): turns on the
            blink rule.
        iod_px: optional inter-ocular distance in crop pixels (:func:`inter_ocular`): turns on the
            amplitude rule (step 9).
    """

    def __init__(
        self,
        fps: float,
        config: SpotConfig | None = None,
        shape: tuple[int, ...] = (128, 128, 3),
        mask: np.ndarray | None = None,
        eyes: np.ndarray | None = None,
        iod_px: float | None = None,
    ) -> None:
        self.config = cfg = config or SpotConfig()
        if iod_px is not None and not (np.isfinite(iod_px) and iod_px > 0):
            raise ValueError(f"iod_px must be a positive number of crop pixels, got {iod_px}")
        self.iod_px = iod_px
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
        self._inside = mask.astype(bool)
        yy, xx = np.nonzero(self._inside)
        self._affine = np.c_[xx, yy, np.ones(len(xx))].astype(np.float32)  # (N, 3) for the affine fit
        self._fit = np.linalg.pinv(self._affine)  # (3, N): least-squares coefficients of one flow component
        self._mask_flat = self._mask.reshape(-1)
        k = cfg.block_step
        self._cells = (cols * k, rows * k)  # cv2 (width, height) of the cell grid
        self._c1 = np.zeros((rows * k, cols * k), np.float32)
        self._c2 = np.zeros_like(self._c1)
        cover = self._window_sum(
            cv2.resize(self._mask, self._cells, interpolation=cv2.INTER_AREA),
            np.zeros((rows * k - k + 1, cols * k - k + 1), np.float32),
        ) / (k * k)
        valid = cover >= cfg.min_block_cover
        if valid.sum() < cfg.top_k:
            raise ValueError(
                f"only {int(valid.sum())} blocks of {cfg.blocks} are at least "
                f"{cfg.min_block_cover:.0%} inside the mask; need top_k={cfg.top_k}: "
                "use a larger mask or fewer blocks"
            )
        self._valid = valid.reshape(-1)
        self._valid_idx = np.flatnonzero(self._valid)  # take() by index allocates nothing, compress() does
        self._inv_cover = np.where(valid, 1.0 / np.maximum(cover * k * k, 1e-6), 0.0).astype(np.float32)
        self._eyes: np.ndarray | None = None
        if eyes is not None:
            eyes = np.asarray(eyes, bool)
            if eyes.shape != (h, w):
                raise ValueError(f"eyes mask shape {eyes.shape} does not match the crop {(h, w)}")
            if eyes.sum() < 4:
                raise ValueError("the eyes mask holds fewer than 4 pixels: pass eye_mask(shape, points68)")
            self._eyes = np.flatnonzero(eyes)
        # pre-allocated work buffers
        self._grey = np.zeros((h, w), np.float32)
        self._grey_u8 = np.zeros((h, w), np.uint8)
        self._colour = np.zeros((h, w, 3), np.float32)
        self._ref = np.zeros((h, w), np.float32)
        self._apex_grey = np.zeros((h, w), np.float32)  # the face at the movement's apex
        self._follow = np.zeros((h, w), np.float32)  # keeps following the face during a movement
        self._box = np.zeros((0, h, w), np.float32)  # last frames for the running mean (set_fps sizes it)
        self._box_sum = np.zeros((h, w), np.float32)
        self._diff = np.zeros((h, w), np.float32)
        self._sq = np.zeros((h, w), np.float32)
        self._m1 = np.zeros(cover.shape, np.float32)
        self._m2 = np.zeros(cover.shape, np.float32)
        n_valid = int(self._valid.sum())
        self._s = np.zeros(n_valid, np.float32)  # block stds
        self._level = np.zeros(n_valid, np.float32)  # per-block noise levels m_b
        self._z = np.zeros(n_valid, np.float32)
        self._z_apex = np.zeros(n_valid, np.float32)  # block scores at the movement's apex
        self._count = np.zeros(n_valid, np.float32)  # decaying counts of recent movements (step 8)
        self._busy = np.zeros(n_valid, bool)  # blocks left out of the statistic
        self._flag = np.zeros(n_valid, bool)
        self._patterns = np.zeros((_PATTERNS, n_valid), np.float32)  # unit block patterns of recent movements
        self._pattern_t = np.full(_PATTERNS, -np.inf)  # when each ended (media time, s)
        self._pattern_peak = np.zeros(_PATTERNS, np.float32)  # and its peak statistic
        self._pattern_next = 0
        self._work = np.zeros(n_valid, np.float32)
        self._work64 = np.zeros(n_valid, np.float64)
        self._acc64 = np.zeros(n_valid, np.float64)
        n_eye = 0 if self._eyes is None else len(self._eyes)
        self._eye_a = np.zeros(n_eye, np.float32)
        self._eye_b = np.zeros(n_eye, np.float32)
        n = cfg.history_len
        self._h_index = np.zeros(n, np.int64)
        self._h_t = np.zeros(n, np.float64)
        self._h_sigma = np.zeros(n, np.float32)
        self._h_ready = np.zeros(n, bool)
        self._h_next = 0
        self._h_count = 0
        self._last_index = -1
        self._rebase_next = False
        self._key_next = False  # the next frame is a keyframe (keyframe())
        self._last_key = -(2**62)  # index of the last keyframe seen
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
        self._repeat_decay = float(np.exp(-1.0 / (cfg.busy_tau_s * fps)))
        self._warmup_frames = max(4, int(round(cfg.warmup_s * fps)))
        self._end_hold = max(1, int(round(cfg.end_hold_s * fps)))
        self._min_frames = max(2.0, cfg.micro_min_s * fps)  # frames above ``low`` a movement needs
        self._macro_max_frames = cfg.macro_max_s * fps
        # at least two frames: one alone leaves H.264's frame-to-frame noise in (below 30 fps, where
        # smooth_s rounds to one frame, the spotter raised several times as many false alarms)
        k = 1 if cfg.smooth_s == 0 else max(2, int(round(cfg.smooth_s * fps)))
        if k != len(self._box):
            self._box = np.zeros((k,) + self._box.shape[1:], np.float32)
            self._box_n = 0
        self._delay = (k - 1) / 2  # frames the running mean lags the stream

    def _restart(self) -> None:
        """Forget reference, noise levels and any movement in progress: learn them again (warm-up)."""
        self._seen = 0  # frames since (re)start
        self._box_n = 0  # frames pushed into the running mean since (re)start
        self._first = -1  # index of the first frame since (re)start
        self._level_n = 0
        self._rel = 0.0
        self._active = False
        self._armed = True  # a new movement may start (False while a tail is above ``low``)
        self._below = 0
        self._onset = self._apex = self._last_above = -1
        self._t_apex = 0.0
        self._peak = 0.0
        self._eye_contrast = 0.0
        self._eye_peak = 0.0
        self._reseed = False  # a keyframe came: take the reference anew at the next quiet frame
        self._count.fill(0.0)
        self._busy.fill(False)
        self._pattern_t.fill(-np.inf)

    def rebase(self) -> None:
        """The crops' alignment changes from the next frame on (e.g. the face stage's landmark
        warm-up ends): the reference is learned anew from that frame, over a warm-up (``warmup_s``)
        in which nothing is spotted, and a movement in progress is dropped; the noise levels are
        kept (and go on being learned)."""
        self._rebase_next = True

    def keyframe(self) -> None:
        """The next frame is a keyframe of predicted video (an H.264 I-frame): its coding noise is
        new over the whole face, and the frames after it are predicted from it. The reference learned
        from the frames before would see that change as a movement of every textured block (an IP
        camera sends a keyframe every 1-2 s). At the first frame outside a movement from then on the
        running mean starts again and that frame becomes the reference, at once, without a warm-up;
        nothing is spotted on it. Ignored when keyframes come at most ``len(running mean)`` frames
        apart (intra-only video: every frame is one, and the running mean averages its noise)."""
        self._key_next = True

    # -- per frame -------------------------------------------------------------------------------

    def _to_grey(self, image: np.ndarray) -> None:
        """Write ``image`` as grey float32 into ``self._grey``."""
        if image.shape != self.shape and not (
            image.ndim == 2 and self.shape[2:] == (1,) and image.shape == self.shape[:2]
        ):
            raise ValueError(
                f"image shape {image.shape} does not match the spotter's {self.shape}; make one Spotter per crop size"
            )
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

    def _window_sum(self, cells: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Sums of ``block_step`` x ``block_step`` neighbouring cells, stride 1, into ``out``."""
        k = self.config.block_step
        rows, cols = out.shape
        np.copyto(out, cells[:rows, :cols])
        for dy in range(k):
            for dx in range(k):
                if dy or dx:
                    out += cells[dy : dy + rows, dx : dx + cols]
        return out

    def _block_stds(self, ref: np.ndarray) -> None:
        """Masked per-block standard deviations of ``grey - ref`` into ``self._s`` (valid blocks)."""
        np.subtract(self._grey, ref, out=self._diff)
        np.multiply(self._diff, self._mask, out=self._diff)
        np.multiply(self._diff, self._diff, out=self._sq)
        cv2.resize(self._diff, self._cells, dst=self._c1, interpolation=cv2.INTER_AREA)
        cv2.resize(self._sq, self._cells, dst=self._c2, interpolation=cv2.INTER_AREA)
        self._window_sum(self._c1, self._m1)
        self._window_sum(self._c2, self._m2)
        np.multiply(self._m1, self._inv_cover, out=self._m1)
        np.multiply(self._m2, self._inv_cover, out=self._m2)
        np.multiply(self._m1, self._m1, out=self._m1)
        np.subtract(self._m2, self._m1, out=self._m2)  # block variance
        np.maximum(self._m2, 0.0, out=self._m2)
        np.sqrt(self._m2, out=self._m2)
        np.take(self._m2.reshape(-1), self._valid_idx, out=self._s, mode="clip")

    def _scaled(self, x: np.ndarray, factor: float, out: np.ndarray) -> np.ndarray:
        """``out = x * factor`` for float32 block vectors, computed as the NumPy expression would be
        (in float64 when ``factor`` is a NumPy float64, whose multiply with a float32 ``out``
        allocates casting buffers), without allocating."""
        if isinstance(factor, np.floating) and factor.dtype == np.float64:
            np.copyto(self._work64, x)
            self._work64 *= factor
            np.copyto(out, self._work64, casting="same_kind")
        else:
            np.multiply(x, factor, out=out)
        return out

    def _statistic(self) -> float:
        """``sigma``: mean of the ``top_k`` largest block scores ``(s_b / m_b - 1) / rel``."""
        np.divide(self._s, self._level, out=self._z)
        np.subtract(self._z, 1.0, out=self._z)
        self._scaled(self._z, 1.0 / self._rel, self._z)
        np.copyto(self._work, self._z)
        if self.config.busy_level > 0:
            np.putmask(self._work, self._busy, 0.0)  # busy blocks (step 8) say nothing
        k = self.config.top_k
        self._work.partition(len(self._work) - k)  # in place: the k largest last
        return float(self._work[-k:].sum()) / k

    def _learn_levels(self) -> None:
        """One step of the per-block noise levels and the relative spread (cumulative at first, then EMA)."""
        self._level_n += 1
        if self._level_n == 1:
            np.maximum(self._s, 1e-6, out=self._level)
            return
        rate = max(self._floor_rate, 1.0 / self._level_n)
        if self._level_n > 3:  # clip outliers so a stray spike cannot lift the levels
            band = 3.0 * self._rel
            self._scaled(self._level, 1.0 - band, self._work)
            np.maximum(self._s, self._work, out=self._s)
            self._scaled(self._level, 1.0 + band, self._work)
            np.minimum(self._s, self._work, out=self._s)
        np.divide(self._s, self._level, out=self._work)
        np.subtract(self._work, 1.0, out=self._work)
        np.abs(self._work, out=self._work)
        mid = len(self._work) // 2
        self._work.partition(mid)  # in place: the (upper) median without a copy
        dev = float(self._work[mid]) * _MAD_TO_STD
        # level += rate * (s - level), without temporaries; in float64 where rate is NumPy's float64
        # (the floor rate), in float32 where it is a Python float (1 / n), as the expression would be
        np.subtract(self._s, self._level, out=self._work)
        if isinstance(rate, np.floating):
            np.copyto(self._work64, self._work)
            self._work64 *= rate
            np.copyto(self._acc64, self._level)
            self._acc64 += self._work64
            np.copyto(self._level, self._acc64, casting="same_kind")
        else:
            self._work *= rate
            self._level += self._work
        np.maximum(self._level, 1e-6, out=self._level)
        self._rel = dev if self._level_n == 2 else self._rel + rate * (dev - self._rel)
        self._rel = max(self._rel, self.config.min_rel_spread)

    def update(self, index: int, t: float, image: np.ndarray) -> list[Interval]:
        """Feed frame ``index`` (time ``t`` s) of the track; returns the intervals completed now.

        ``image``: the aligned crop, ``shape`` as given at construction, uint8 or float.
        ``index`` must increase (gaps are dropped frames).
        """
        if index <= self._last_index:
            raise ValueError(f"frame {index} after frame {self._last_index}: indices must increase")
        self._to_grey(image)
        if not np.isfinite(float(self._grey.sum())):
            raise ValueError(f"frame {index} has NaN or infinite pixels")
        t = float(t)
        if self._rebase_next:
            self._rebase_next = False
            self._seen = self._box_n = 0
            self._active, self._armed, self._below = False, True, 0
        if self._key_next:
            self._key_next = False
            self._reseed |= self._seen > 0 and index - self._last_key > len(self._box)
            self._last_key = index
        if self._seen == 0:  # (re)start: this frame is the first reference
            self._first = index
            self._ref[:] = self._grey
            self._running_mean()
            self._seen = 1
            self._last_index = index
            self._record(index, t, np.nan)
            return []
        if self.config.normalize_gain:
            self._match_gain()
        if self._reseed and not self._active:  # after a keyframe: this frame is the new reference
            self._reseed = False
            self._box_n = 0
            self._running_mean()
            self._ref[:] = self._grey
            self._last_index = index
            self._seen += 1
            self._record(index, t, np.nan)
            self._count *= self._repeat_decay
            return []
        self._running_mean()
        self._block_stds(self._ref)
        self._last_index = index
        self._seen += 1
        out: list[Interval] = []
        if self._seen <= self._warmup_frames or self._level_n < 2:
            self._learn_levels()
            self._record(index, t, self._statistic() if self._level_n >= 2 else 0.0)
        else:
            x = self._statistic()
            self._record(index, t, x)  # before tracking: closing a movement reads the history
            iv = self._track(index, t, x)
            if iv is not None:
                out.append(iv)
        self._count *= self._repeat_decay
        if not self._active and self.config.busy_level > 0:  # the busy set is fixed during a movement
            np.greater_equal(self._count, self.config.busy_level, out=self._busy)
        if self._active and index - self._onset + 1 > self._macro_max_frames:
            iv = self._close_held(index)  # held on: report it as macro, then learn the face anew
            self._restart()
            if iv is not None:
                out.append(iv)
        elif self._active:  # the reference is frozen during a movement; the follower is not
            self._learn_following()
        else:
            cv2.accumulateWeighted(self._grey, self._ref, max(self._ref_rate, 1.0 / self._seen))
        return out

    def _learn_following(self) -> None:
        """During a movement, learn the noise levels against a reference that keeps following the
        face (as the reference does between movements): levels learned in a short warm-up, or
        before a slow change of the face, are corrected even while a movement holds the spotter."""
        if self._onset == self._last_index:
            self._follow[:] = self._ref
        self._block_stds(self._follow)
        self._learn_levels()
        cv2.accumulateWeighted(self._grey, self._follow, self._ref_rate)

    def _running_mean(self) -> None:
        """Replace ``grey`` by the mean of the last ``len(box)`` frames (fewer right after a start)."""
        k = len(self._box)
        if k == 1:
            return
        slot = self._box[self._box_n % k]
        if self._box_n == 0:
            self._box_sum[:] = 0.0
        elif self._box_n >= k:
            self._box_sum -= slot
        self._box_sum += self._grey
        slot[:] = self._grey
        self._box_n += 1
        if self._box_n % k == 0:  # once per round, the exact sum (no rounding drift)
            np.copyto(self._box_sum, self._box[0])
            for frame in self._box[1:]:
                self._box_sum += frame
        np.multiply(self._box_sum, 1.0 / min(self._box_n, k), out=self._grey)

    def _match_gain(self) -> None:
        """Scale ``grey`` so its masked mean equals the reference's (global exposure changes)."""
        s_img = float(np.dot(self._grey.reshape(-1), self._mask_flat))
        s_ref = float(np.dot(self._ref.reshape(-1), self._mask_flat))
        if s_img > 0 and s_ref > 0:
            np.multiply(self._grey, s_ref / s_img, out=self._grey)

    def _track(self, index: int, t: float, x: float) -> Interval | None:
        """One step of the movement state machine on statistic ``x``; a finished interval or None."""
        cfg = self.config
        if not self._active:
            if x < cfg.low or not self._armed:  # quiet, or still the tail of the last movement
                self._armed = self._armed or x < cfg.low
                self._learn_levels()
                return None
            self._active = True
            self._onset = self._apex = self._last_above = index
            self._t_apex = t
            self._peak, self._below = x, 0
            np.copyto(self._z_apex, self._z)
            np.copyto(self._apex_grey, self._grey)
            self._eye_peak = 0.0
            self._eye_contrast = self._fissure_contrast()
        elif x >= max(cfg.low, cfg.end_frac * self._peak):
            self._last_above, self._below = index, 0
            if x > self._peak:
                self._peak, self._apex, self._t_apex = x, index, t
                np.copyto(self._z_apex, self._z)
                np.copyto(self._apex_grey, self._grey)
        else:
            if x >= cfg.low:  # the duration rule counts the frames above ``low``, not the end level
                self._last_above = index
            self._below += 1
            if self._below >= self._end_hold:
                self._active = False
                self._armed = x < cfg.low
                return self._close()
        if self._eyes is not None:
            self._eye_peak = max(self._eye_peak, self._fissure_change())
        return None

    def _fissure_contrast(self) -> float:
        """Standard deviation of the reference over the eye fissures (0 without an eyes mask)."""
        if self._eyes is None:
            return 0.0
        np.take(self._ref.reshape(-1), self._eyes, out=self._eye_a, mode="clip")  # "raise" buffers its output
        return float(self._eye_a.std())

    def _fissure_change(self) -> float:
        """RMS of ``grey - ref`` over the eye fissures, as a fraction of their contrast."""
        assert self._eyes is not None
        np.take(self._grey.reshape(-1), self._eyes, out=self._eye_a, mode="clip")
        np.take(self._ref.reshape(-1), self._eyes, out=self._eye_b, mode="clip")
        np.subtract(self._eye_a, self._eye_b, out=self._eye_a)
        rms = float(np.sqrt(np.dot(self._eye_a, self._eye_a) / len(self._eye_a)))
        return rms / max(self._eye_contrast, 1e-6)

    def flush(self) -> list[Interval]:
        """End of stream: the movement in progress as a completed interval, if it qualifies and
        has already fallen below half its peak (a movement still rising, or at its apex, when the
        stream ends may be a lasting change rather than an expression)."""
        if not self._active:
            return []
        self._active = False
        last = self._h_sigma[(self._h_next - 1) % self.config.history_len]
        if not last < 0.5 * self._peak:
            return []
        iv = self._close()
        return [] if iv is None else [iv]

    def _count_movement(self) -> bool:
        """Add the finished movement to its blocks' counts (step 8); whether it repeats a recent one."""
        cfg = self.config
        # busy blocks are counted too (from their own scores), so they stay busy while they move
        np.greater_equal(self._z_apex, max(cfg.low, 0.25 * self._peak), out=self._flag)
        self._count += self._flag
        pattern = np.maximum(self._z_apex - cfg.low, 0.0)  # the blocks that stand out of the noise
        pattern[self._busy] = 0.0  # over the blocks in use
        norm = float(np.linalg.norm(pattern))
        if norm <= 0:
            return False
        pattern /= norm
        t = float(self._h_t[(self._h_next - 1) % cfg.history_len])
        # a repeat of a recent movement of at least a third of its strength (a faint stir is no model)
        recent = (self._pattern_t >= t - cfg.repeat_window_s) & (self._pattern_peak >= self._peak / 3)
        repeat = False
        if cfg.repeat_similarity > 0 and recent.any():
            old = self._patterns[recent] * ~self._busy  # over the blocks in use now
            norms = np.linalg.norm(old, axis=1)
            sims = old @ pattern / np.maximum(norms, 1e-9)
            repeat = bool((sims >= cfg.repeat_similarity).any())
        self._patterns[self._pattern_next] = pattern
        self._pattern_t[self._pattern_next] = t
        self._pattern_peak[self._pattern_next] = self._peak
        self._pattern_next = (self._pattern_next + 1) % _PATTERNS
        return repeat

    def _motion(self) -> tuple[float, float]:
        """The movement's displacement field, reference (still the one frozen at the onset) to apex,
        by DIS optical flow (steps 9 and 10): its largest displacement, in inter-ocular distances
        (NaN without ``iod_px``), averaged over cells of an eighth of that distance inside the mask;
        and the share of its largest 5 % of vectors that one affine motion of the crop explains."""
        from .flow import estimator

        # to 8 bits for DIS, both by one map that spans the reference's range (any input scale)
        lo, hi = float(self._ref.min()), float(self._ref.max())
        scale = 255.0 / max(hi - lo, 1e-6)
        a, b = (cv2.convertScaleAbs(g, alpha=scale, beta=-lo * scale) for g in (self._ref, self._apex_grey))
        flow = estimator("dis", "medium").flow_grey(a, b)
        u, v = flow[..., 0][self._inside], flow[..., 1][self._inside]
        mag2 = u * u + v * v
        top = mag2 >= np.percentile(mag2, 95)
        ru, rv = u - self._affine @ (self._fit @ u), v - self._affine @ (self._fit @ v)
        share = 1.0 - float((ru[top] ** 2 + rv[top] ** 2).sum()) / max(float(mag2[top].sum()), 1e-12)
        if self.iod_px is None:
            return float("nan"), share
        mag = np.hypot(flow[..., 0], flow[..., 1]) * self._mask
        cell = max(2.0, self.iod_px / 8)
        size = (max(1, round(mag.shape[1] / cell)), max(1, round(mag.shape[0] / cell)))
        inside = cv2.resize(self._mask, size, interpolation=cv2.INTER_AREA)
        cells = cv2.resize(mag, size, interpolation=cv2.INTER_AREA) / np.maximum(inside, 1e-6)
        return float(cells[inside >= 0.5].max(initial=0.0)) / self.iod_px, share

    def _close_held(self, index: int) -> Interval | None:
        """A movement held past ``macro_max_s``: a ``"macro"`` from its onset to ``index`` (None if
        too weak or macro-expressions are not reported)."""
        cfg = self.config
        if self._peak < cfg.threshold or not cfg.report_macro:
            return None
        # a held face has no single peak (its statistic creeps up as the levels adapt): the apex is
        # where it first came within 10 % of the highest value of its first micro_max_s
        h = self.history()
        start = h.index >= self._onset
        early = start & (h.index <= self._onset + cfg.micro_max_s * self.fps)
        at = int(np.flatnonzero(start & (h.sigma >= 0.9 * float(h.sigma[early].max())))[0])
        delay = int(round(self._delay))
        apex = max(self._first, int(h.index[at]) - delay)
        onset = min(apex, max(self._first, self._onset - delay))
        offset = max(apex, index - delay)
        t_apex = float(h.t[at]) - delay / self.fps
        return Interval(
            onset, apex, offset, t_apex - (apex - onset) / self.fps, t_apex, t_apex + (offset - apex) / self.fps,
            "macro", float(self._peak),
        )  # fmt: skip

    def _half_crossings(self) -> tuple[float, float]:
        """Frame positions (interpolated) where ``sigma`` crosses half its peak before and after the apex."""
        h = self.history()  # once per movement, not per frame
        half = 0.5 * self._peak
        k0 = int(np.searchsorted(h.index, self._apex))
        rise = fall = float(self._apex)
        for k in range(k0, 0, -1):
            rise = float(h.index[k])
            a, b = h.sigma[k - 1], h.sigma[k]
            if not (a >= half and h.ready[k - 1]):  # below half, NaN (a first frame) or still learning
                if a < b:
                    rise -= (b - half) / (b - a) * (h.index[k] - h.index[k - 1])
                break
        for k in range(k0, len(h.index) - 1):
            fall = float(h.index[k])
            a, b = h.sigma[k], h.sigma[k + 1]
            if b < half:
                fall += (a - half) / (a - b) * (h.index[k + 1] - h.index[k])
                break
        return rise, fall

    def _close(self) -> Interval | None:
        """The finished movement as an Interval, or None when too short, too weak, a blink or unreported."""
        cfg = self.config
        # the running mean stretches a movement by len(box) - 1 frames
        frames = self._last_above - self._onset + 2 - len(self._box)
        blink = cfg.blink_level > 0 and self._eye_peak >= cfg.blink_level
        # every movement but a blink is a model of its repeats, a short one too: a syllable the
        # statistic saw for one frame is still the mouth moving
        repeat = not blink and self._count_movement()
        if frames < self._min_frames:
            return None
        if self._peak < cfg.threshold:
            return None
        rise, fall = self._half_crossings()
        # the running mean lags the stream by ``delay`` frames: shift the three back
        apex = max(self._first, self._apex - int(round(self._delay)))
        onset = self._onset_at(rise)
        offset = max(apex, int(round(2 * fall - self._apex - self._delay)))
        seconds = (offset - onset) / self.fps
        kind: EventKind = "micro" if seconds <= cfg.micro_max_s else "macro"
        if seconds <= cfg.blink_max_s and blink:
            return None
        if cfg.micro_max_iod > 0 or cfg.rigid_share > 0 or cfg.min_move_iod > 0:
            size, rigid = self._motion()  # size is NaN without iod_px: no comparison holds
            if cfg.rigid_share > 0 and rigid >= cfg.rigid_share:
                return None  # the head moved, the face did not
            if size < cfg.min_move_iod:
                return None  # nothing moved: noise, light, compression
            if kind == "micro" and cfg.micro_max_iod > 0 and size > cfg.micro_max_iod:
                return None
            slack = seconds <= cfg.micro_max_s + cfg.micro_slack_s
            if kind == "macro" and slack and cfg.micro_max_iod > 0 and size <= cfg.micro_max_iod:
                kind = "micro"  # placed a little too long, but as subtle as a micro-expression
        if kind == "macro" and not cfg.report_macro:
            return None
        if kind == "micro" and repeat:
            return None
        t_apex = self._t_apex - (self._apex - apex) / self.fps
        t_on = t_apex - (apex - onset) / self.fps
        t_off = t_apex + (offset - apex) / self.fps
        return Interval(onset, apex, offset, t_on, t_apex, t_off, kind, float(self._peak))

    # -- display ---------------------------------------------------------------------------------

    def _record(self, index: int, t: float, x: float) -> None:
        i = self._h_next
        self._h_index[i] = index
        self._h_t[i] = t
        self._h_sigma[i] = x
        self._h_ready[i] = self._seen > self._warmup_frames
        self._h_next = (i + 1) % self.config.history_len
        self._h_count = min(self._h_count + 1, self.config.history_len)

    def history(self, n: int | None = None) -> SigmaTrace:
        """The last ``n`` (default: all kept) values of the spotting signal, oldest first (copies)."""
        count = self._h_count if n is None else max(0, min(n, self._h_count))
        order = (self._h_next - count + np.arange(count)) % self.config.history_len
        return SigmaTrace(self._h_index[order], self._h_t[order], self._h_sigma[order], self._h_ready[order])

    @property
    def sigma(self) -> np.ndarray:
        """``(N,)`` float32 recent ``sigma`` values, oldest first (a copy; NaN on a first frame)."""
        return self.history().sigma

    @property
    def active(self) -> bool:
        """Whether a movement is in progress."""
        return self._active

    @property
    def movement_start(self) -> int | None:
        """Onset frame of the movement in progress as its interval would place it if it closed now
        (from the half-maximum crossing before the apex so far, step 6), None when none is. It moves
        while the movement still rises and stays once the apex has passed."""
        return self._onset_at(self._half_crossings()[0]) if self._active else None

    def _onset_at(self, rise: float) -> int:
        """Onset frame of the movement from its half-maximum rise crossing ``rise`` (step 6), shifted
        back by the running mean's lag, at most the apex."""
        apex = max(self._first, self._apex - int(round(self._delay)))
        return min(apex, max(self._first, int(round(2 * rise - self._apex - self._delay))))


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
    raise ValueError(
        f"an interval is an Interval or (onset, offset), (onset, apex, offset) or "
        f"(onset, apex, offset, kind); got {s!r}"
    )


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


def match_intervals(pred: Sequence[Span], truth: Sequence[Span], iou: float = 0.5, by_kind: bool = False) -> Match:
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
    apex: list[int] = []
    for i, j, _ in pairs:
        pa, ga = p[i][1], g[j][1]
        if pa is not None and ga is not None:
            apex.append(pa - ga)
    tp = len(pairs)
    return Match(tuple(pairs), SpotScore(tp, len(p) - tp, len(g) - tp), tuple(apex))
