"""Face stage: MediaPipe landmarks, the 68-point layout, track ids, registered eye-centred crops, ROIs."""

from realtime_mer.face.model import ModelFileError, ModelNotFoundError, fetch_model, resolve_model_path
from realtime_mer.face.regions import crop_regions, regions
from realtime_mer.face.stage import FaceConfig, FaceStage

__all__ = [
    "FaceConfig",
    "FaceStage",
    "ModelFileError",
    "ModelNotFoundError",
    "crop_regions",
    "fetch_model",
    "regions",
    "resolve_model_path",
]
