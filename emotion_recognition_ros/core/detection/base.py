"""The face detector base class and the registry by name (`create_detector("mtcnn", ...)`).

Only detectors whose weights come inside a registry package qualify (nothing is downloaded at run time).
A registered detector owns its options, as timm's registered model entrypoints do: `options_from(config)` says
which pipeline settings it takes, `configure` applies changed ones, and the registry entry says which detector
runs the same weights on CUDA. Callers never branch on a detector's name. Each detector also says how its boxes
relate to the tight, square face crops the classifier was trained on (`box_adjust`), so the pipeline can crop
what the classifier saw in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..types import Detection

if TYPE_CHECKING:
    from ..config import PipelineConfig


@dataclass(frozen=True)
class BoxAdjust:
    """Maps a detector box to the classifier's training crop: centre shift (fractions of the box's w, h)
    and side = scale * max(w, h). Measured per detector on pasted CK+ faces (see docs/node.md)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x, y, w, h = box
        cx, cy = x + w / 2.0 + self.dx * w, y + h / 2.0 + self.dy * h
        side = max(w, h) * self.scale
        return cx - side / 2.0, cy - side / 2.0, side, side


class FaceDetector:
    """A face detector: `detect` is required; the optional abilities have defaults a detector overrides."""

    name: str = ""
    box_adjust: BoxAdjust = BoxAdjust()
    can_refine: bool = False  # `refine` re-measures known faces (see below)
    reads_device_frames: bool = False  # `detect`/`refine` also take a (H, W, 3) uint8 tensor on the device

    @classmethod
    def options_from(cls, config: PipelineConfig) -> dict:
        """The constructor's and `configure`'s keyword arguments taken from pipeline settings."""
        return {}

    def configure(self, **changes) -> None:
        """Apply changed settings (keys as `options_from` gives them) at run time; nothing to change by default."""

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        """Faces in a uint8 BGR frame, best first."""
        raise NotImplementedError

    def refine(self, bgr: np.ndarray, previous: Sequence[Detection]) -> list[Detection | None]:
        """Where `can_refine`: re-measure faces known from an earlier frame near their old boxes, far cheaper than
        `detect`; one entry per previous face, None where it is no longer there. The pipeline uses it between
        full detections (see `PipelineConfig.detect_every_n`)."""
        raise NotImplementedError(f"detector '{self.name}' cannot refine")


@dataclass(frozen=True)
class DetectorEntry:
    factory: Callable[..., FaceDetector]  # a FaceDetector class, called with device= and its options
    on_cuda: str | None = None  # the registered detector that runs the same weights on CUDA, if this one cannot


_REGISTRY: dict[str, DetectorEntry] = {}


def register_detector(name: str, on_cuda: str | None = None) -> Callable[[type[FaceDetector]], type[FaceDetector]]:
    def wrap(factory: type[FaceDetector]) -> type[FaceDetector]:
        _REGISTRY[name] = DetectorEntry(factory, on_cuda)
        return factory
    return wrap


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> DetectorEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector '{name}' (available: {', '.join(available_detectors())})")
    return _REGISTRY[name]


def detector_for(name: str, device: str | torch.device | None) -> str:
    """The registered detector that runs `name` on `device` (its `on_cuda` entry on CUDA, else itself)."""
    on_cuda = _entry(name).on_cuda
    return on_cuda if on_cuda and device is not None and torch.device(device).type == "cuda" else name


def create_detector(name: str, device: str | torch.device | None = None, config: PipelineConfig | None = None,
                    **options) -> FaceDetector:
    """A detector by registry name, run on `device` (see `detector_for`), with its options from `config` (see
    `FaceDetector.options_from`) and then `options`. Unknown names raise ValueError listing the known ones."""
    factory = _entry(detector_for(name, device)).factory
    settings = factory.options_from(config) if config is not None else {}
    return factory(device=device, **{**settings, **options})
