"""Nuisances of real footage over time: head drift and jitter, lighting flicker and exposure drift.

Sensor noise is added by the renderer and compression by the mp4 encoder; both are configured in
:class:`~.config.NuisanceConfig` too.
"""

from __future__ import annotations

import math

import numpy as np

from .config import NuisanceConfig


def _wave(peak: float, periods: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Two sinusoids ``(amplitude, angular frequency, phase)`` rows whose amplitudes add up to at most ``peak``."""
    share = rng.uniform(0.2, 0.8)
    amps = peak * rng.uniform(0.5, 1.0) * np.array([share, 1.0 - share])
    omega = 2 * math.pi / rng.uniform(*periods, 2)
    return np.c_[amps, omega, rng.uniform(0, 2 * math.pi, 2)]


def _eval(wave: np.ndarray, t: float) -> float:
    return float((wave[:, 0] * np.sin(wave[:, 1] * t + wave[:, 2])).sum())


class HeadMotion:
    """Slow drift and per-frame jitter of one face: a similarity transform about the face centre.

    Drift (translation, roll, scale) is a sum of two slow sinusoids per parameter with random periods
    and phases; jitter is white Gaussian translation drawn at each call, so frames must be asked for
    in order for a run to repeat.
    """

    def __init__(self, centre: np.ndarray, face_width: float, config: NuisanceConfig, rng: np.random.Generator):
        scale = face_width / 200.0
        self._centre = np.asarray(centre, np.float64)
        self._tx = _wave(config.drift_px * scale, config.drift_period_s, rng)
        self._ty = _wave(config.drift_px * scale, config.drift_period_s, rng)
        self._rot = _wave(math.radians(config.drift_deg), config.drift_period_s, rng)
        self._scale = _wave(config.drift_scale, config.drift_period_s, rng)
        self._jitter = config.jitter_px * scale
        self._rng = rng
        self.still = config.drift_px == config.drift_deg == config.drift_scale == config.jitter_px == 0

    def matrix(self, t: float) -> np.ndarray:
        """``(2, 3)`` float64 map from canvas pixels to frame pixels at time ``t`` (s)."""
        a = _eval(self._rot, t)
        s = 1.0 + _eval(self._scale, t)
        lin = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        shift = np.array([_eval(self._tx, t), _eval(self._ty, t)])
        if self._jitter > 0:
            shift += self._rng.normal(0.0, self._jitter, 2)
        return np.c_[lin, self._centre + shift - lin @ self._centre]


class Illumination:
    """Global brightness gain over time: mains flicker aliased by the frame rate, plus slow exposure drift.

    Lights flicker at twice the mains frequency; sampled at ``fps`` the flicker appears at
    ``|2 mains - k fps|`` for the nearest whole ``k`` (e.g. 10 Hz for 50 Hz mains at 30 fps).
    """

    def __init__(self, fps: float, config: NuisanceConfig, rng: np.random.Generator):
        light = 2.0 * config.mains_hz
        self.flicker_hz = abs(light - fps * round(light / fps))
        self._flicker = config.flicker
        self._phase = rng.uniform(0, 2 * math.pi)
        self._exposure = _wave(config.exposure_drift, config.drift_period_s, rng)
        self.steady = config.flicker == 0 and config.exposure_drift == 0

    def gain(self, t: float) -> float:
        """Relative brightness at time ``t`` (s); 1.0 when steady."""
        flicker = self._flicker * math.sin(2 * math.pi * self.flicker_hz * t + self._phase)
        return 1.0 + flicker + _eval(self._exposure, t)
