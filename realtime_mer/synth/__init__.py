"""Synthetic micro-expressions planted on real faces, with exact ground truth.

FACS action units (:mod:`.aus`) become smooth local warps (:mod:`.warp`) of real face footage
(:mod:`.faces`), with a raised-cosine time course (:mod:`.timeline`) and the nuisances of real
footage (:mod:`.nuisance`, :mod:`.render`), filmed by varied cameras (:mod:`.camera`).
:func:`write_dataset` writes mp4 clips with JSON/CSV ground truth and :func:`load_ground_truth`
reads it back; :class:`SyntheticSource` is a live capture source for ``realtime-mer --demo``.
"""

from .aus import ACTION_UNITS, parse_aus
from .camera import Camera, draw_camera
from .config import CameraConfig, EventConfig, IdentityConfig, NuisanceConfig, SynthConfig
from .dataset import ClipTruth, DatasetError, DatasetSummary, FaceTruth, load_ground_truth, write_dataset
from .emotions import CLASSES, EMOTION_AUS
from .faces import Base, BaseFaceError, Subject, default_bases, make_subjects, read_base
from .live import SyntheticSource, record
from .timeline import PlantedEvent

__all__ = [
    "ACTION_UNITS",
    "CLASSES",
    "EMOTION_AUS",
    "Base",
    "BaseFaceError",
    "Camera",
    "CameraConfig",
    "ClipTruth",
    "DatasetError",
    "DatasetSummary",
    "EventConfig",
    "FaceTruth",
    "IdentityConfig",
    "NuisanceConfig",
    "PlantedEvent",
    "Subject",
    "SynthConfig",
    "SyntheticSource",
    "default_bases",
    "draw_camera",
    "load_ground_truth",
    "make_subjects",
    "parse_aus",
    "read_base",
    "record",
    "write_dataset",
]
