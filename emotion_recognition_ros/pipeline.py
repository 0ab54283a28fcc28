"""detect -> track -> crop -> classify -> smooth (-> Grad-CAM), as one object with `process(frame)`.

ROS-free: the node, the tests and the benchmarks all call `EmotionPipeline.process` directly. The result
keeps per-stage timings (seconds) and, per face, the exact crop the classifier saw, so any evaluator can
re-run the model offline on the same pixels.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .classifier import Classifier
from .detectors import Detection, FaceDetector, create_detector
from .preprocess import crop_face, square_box
from .smoother import EmaSmoother
from .tracker import IouTracker

STAGES = ("detect", "preprocess", "classify", "gradcam")


@dataclass
class PipelineConfig:
    model_path: str = ""  # empty: the shipped default model
    device: str = "auto"
    backend: str = "auto"  # classifier inference: auto | torch | onnxruntime (see classifier.resolve_backend)
    detector: str = "mtcnn"
    min_face_size: int = 60
    detection_threshold: float = 0.9
    mtcnn_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    detect_scale: float = 1.0  # run the detector on the frame scaled by this
    detect_every_n: int = 5  # full detection at least every Nth frame while faces are tracked (1 = every frame)
    track_refine: bool = True  # between full detections re-measure tracked faces (detector.refine); False: carry boxes
    detect_async: bool = False  # while faces are tracked, detect in a background thread (see async_detector)
    face_margin: float = 0.0  # extra margin (fraction of the side) on top of the model's training crop
    max_faces: int = 10
    smoothing: float = 0.5  # EMA weight of the past; 0 = off
    track_iou: float = 0.3
    track_confirm_hits: int = 1
    track_max_misses: int = 5


@dataclass
class FaceResult:
    track_id: int
    detection: Detection
    crop_box: tuple[float, float, float, float]  # square box the classifier's crop was cut from
    roi: tuple[int, int, int, int]  # crop_box rounded and clipped to the frame (x, y, w, h)
    crop: np.ndarray  # the BGR pixels the classifier saw (before gray/resize)
    raw_scores: np.ndarray  # this frame's probabilities
    scores: np.ndarray  # temporally smoothed probabilities
    track_age: int
    fresh: bool  # detected in this frame (False: box carried from an earlier detection)

    @property
    def label_index(self) -> int:
        return int(np.argmax(self.scores))


@dataclass
class PipelineResult:
    faces: list[FaceResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    detected: bool = False  # boxes were measured on this frame (full detection or refined tracks)
    refined: bool = False  # ... by re-measuring tracked faces near their old boxes, not a full detection
    batch: torch.Tensor | None = None  # network input of all faces, for a later explanation
    heatmaps: np.ndarray | None = None  # (N, S, S) Grad-CAM maps when explain=True

    @property
    def total_time(self) -> float:
        return sum(self.timings.values())


def rounded_roi(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel box as crop_face cuts it, clipped to the frame."""
    x, y, w, h = box
    x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return int(x0), int(y0), int(max(0, x1 - x0)), int(max(0, y1 - y0))


class EmotionPipeline:
    def __init__(self, config: PipelineConfig | None = None, classifier: Classifier | None = None,
                 detector: FaceDetector | None = None):
        self.config = config or PipelineConfig()
        c = self.config
        self.classifier = classifier or Classifier(c.model_path or None, c.device, backend=c.backend)
        self.detector = detector or create_detector(
            c.detector, **self._detector_options(c, cuda=self.classifier.device.type == "cuda"))
        self.tracker = IouTracker(c.track_iou, c.track_confirm_hits, c.track_max_misses)
        self.smoother = EmaSmoother(c.smoothing)
        self._explainer = None
        self._background = None
        self._last_offer = -1_000_000
        self._since_detection = 0  # frames since the last full detection
        self.frame_index = 0

    @staticmethod
    def _detector_options(c: PipelineConfig, cuda: bool) -> dict:
        if c.detector == "mtcnn":
            return dict(min_face_size=c.min_face_size, thresholds=c.mtcnn_thresholds,
                        score_threshold=c.detection_threshold, scale=c.detect_scale, cuda=cuda)
        return {}

    @property
    def class_names(self) -> list[str]:
        return self.classifier.class_names

    @property
    def model_id(self) -> str:
        return self.classifier.model_id

    def reconfigure(self, **changes) -> None:
        """Apply run-time changes (thresholds, smoothing, ...) without reloading anything."""
        for key, value in changes.items():
            if not hasattr(self.config, key):
                raise ValueError(f"unknown pipeline setting '{key}'")
            setattr(self.config, key, value)
        c = self.config
        if hasattr(self.detector, "configure"):
            busy = self._background._use if self._background is not None else contextlib.nullcontext()
            with busy:  # never change the detector under a running background detection
                self.detector.configure(**{k: v for k, v in self._detector_options(c, False).items() if k != "cuda"})
        self.smoother.alpha = c.smoothing
        self.tracker.iou_threshold = c.track_iou
        self.tracker.confirm_hits = c.track_confirm_hits
        self.tracker.max_misses = c.track_max_misses

    def reset(self) -> None:
        """Forget all tracks (e.g. when the input stream restarts)."""
        self.tracker.reset()
        self.smoother.reset()
        self.frame_index = 0
        self._since_detection = 0
        if self._background is not None:
            self._background.poll()  # a detection still running belongs to the old stream: drop it

    def crop_box(self, detection: Detection) -> tuple[float, float, float, float]:
        """The square region the classifier should see: detector calibration, then the model's own
        training margin plus the user's extra margin."""
        margin = float(self.classifier.meta.face_crop.get("margin", 0.0)) + self.config.face_margin
        x, y, side, _ = square_box(*self.detector.box_adjust.apply(detection.box), margin)
        # Snap to whole pixels with equal sides, so the crop is exactly square and its published ROI
        # names exactly the pixels the classifier saw.
        whole = max(1, round(side))
        x0, y0 = round(x + (side - whole) / 2.0), round(y + (side - whole) / 2.0)
        return float(x0), float(y0), float(whole), float(whole)

    def process(self, frame: np.ndarray, explain: bool = False) -> PipelineResult:
        """One uint8 BGR frame -> faces with ids, boxes, raw and smoothed probabilities (+ Grad-CAM)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.size == 0:
            raise ValueError(f"expected a non-empty uint8 BGR HxWx3 frame, got {frame.dtype} {frame.shape}")
        result = PipelineResult()
        t = time.perf_counter()
        detections = self._detect(frame)
        self.frame_index += 1
        result.detected = detections is not None
        result.refined = isinstance(detections, dict)
        if result.refined:  # tracked faces re-measured in this frame
            tracks = self.tracker.refresh(detections)
        elif detections is not None:
            tracks = self.tracker.update(detections[: self.config.max_faces])
            self.smoother.forget(self.tracker.dropped_ids)
        else:
            tracks = self.tracker.carry()
        tracks = tracks[: self.config.max_faces]
        now = time.perf_counter()
        result.timings["detect"], t = now - t, now

        height, width = frame.shape[:2]
        boxes = [self.crop_box(tr.detection) for tr in tracks]
        crops = [crop_face(frame, box, 0.0, square=False) for box in boxes]
        result.batch = self.classifier.to_batch(crops)
        now = time.perf_counter()
        result.timings["preprocess"], t = now - t, now

        raw = self.classifier.predict(result.batch)
        for track, box, crop, probs in zip(tracks, boxes, crops, raw):
            result.faces.append(FaceResult(
                track_id=track.track_id, detection=track.detection, crop_box=box,
                roi=rounded_roi(box, width, height), crop=crop, raw_scores=probs,
                scores=self.smoother.update(track.track_id, probs), track_age=track.age,
                fresh=result.detected and track.updated))
        now = time.perf_counter()
        result.timings["classify"], t = now - t, now

        if explain:
            result.heatmaps = self.explain(result)
            result.timings["gradcam"] = time.perf_counter() - t
        return result

    def _detect(self, frame: np.ndarray) -> list[Detection] | dict[int, Detection] | None:
        """This frame's detections: a list from a full detection, a dict track id -> detection when the
        tracked faces were re-measured instead, or None when the tracked boxes are carried over."""
        if not self.config.detect_async:
            return self._detect_or_refine(frame)
        if self._background is None:
            from .async_detector import BackgroundDetector

            self._background = BackgroundDetector(self.detector)
        if not self.tracker.tracks:  # nothing to carry: waiting costs nothing extra, there is nothing to classify
            self._last_offer = self.frame_index
            return self._background.detect_now(frame)
        finished = self._background.poll()
        # detect_every_n also paces the background detector: a new detection starts at most every Nth frame,
        # leaving CPU time to the classifier instead of detecting back to back.
        if self.frame_index - self._last_offer >= max(1, self.config.detect_every_n):
            if self._background.offer(frame):
                self._last_offer = self.frame_index
        return finished

    def _detect_or_refine(self, frame: np.ndarray) -> list[Detection] | dict[int, Detection] | None:
        """Full detection every `detect_every_n` frames; in between, the visible tracks are re-measured near
        their old boxes (`detector.refine`, ~1 ms a face instead of ~25 ms for MTCNN at 640x480). A face
        that cannot be re-measured (a scene cut, fast motion, it left) makes this frame a full detection, so
        the boxes published always come from this frame. New faces appear at the next full detection."""
        c = self.config
        due = self._since_detection + 1 >= max(1, c.detect_every_n)
        visible = [t for t in self.tracker.tracks if t.misses == 0]
        if not due and visible:
            if not c.track_refine or not hasattr(self.detector, "refine"):
                self._since_detection += 1
                return None
            refined = self.detector.refine(frame, [t.detection for t in visible])
            if all(d is not None for d in refined):
                self._since_detection += 1
                return {t.track_id: d for t, d in zip(visible, refined)}
        self._since_detection = 0
        return self.detector.detect(frame)

    def close(self) -> None:
        """Stop the background detector thread, if any."""
        if self._background is not None:
            self._background.close()
            self._background = None

    def explain(self, result: PipelineResult) -> np.ndarray:
        """Grad-CAM maps (N, S, S) for a result's faces, for the class each face is labelled with."""
        if self._explainer is None:
            from .explainer import GradCamExplainer

            self._explainer = GradCamExplainer(self.classifier.model)
        if result.batch is None or not result.faces:
            return np.empty((0, self.classifier.meta.input_size, self.classifier.meta.input_size), np.float32)
        return self._explainer.explain(result.batch, [f.label_index for f in result.faces])

    def warmup_explainer(self) -> None:
        """Build the Grad-CAM copy and run it once, so the first heatmap is not slow."""
        self._explainer = None
        dummy = self.classifier.to_batch([np.zeros((48, 48), np.uint8)])
        from .explainer import GradCamExplainer

        self._explainer = GradCamExplainer(self.classifier.model)
        self._explainer.explain(dummy, [0])


def load_pipeline(model_path: str | Path | None = None, **config) -> EmotionPipeline:
    """Convenience: a pipeline with the given settings (see PipelineConfig)."""
    return EmotionPipeline(PipelineConfig(model_path=str(model_path or ""), **config))
