"""detect -> track -> crop -> classify -> smooth (-> Grad-CAM), as one object with `process(frame)`.

Wiring only: when to detect is detection/scheduling.py's, how to track tracking/'s, how to classify
classifier/'s, how to explain explain.py's. ROS-free: the node, the tests and the benchmarks all call
`EmotionPipeline.process` directly. The result keeps per-stage timings (seconds) and, per face, the exact
crop the classifier saw, so any evaluator can re-run the model offline on the same pixels.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .alignment import eye_roll_degrees, rotated_crop
from .classifier import Classifier
from .config import PipelineConfig
from .settings_check import check_values
from .detection import FaceDetector, create_detector
from .detection.scheduling import DetectionScheduler, Outcome
from .device import synchronize
from .explain import DEFAULT_LAYER, DEFAULT_METHOD, CamExplainer, resolve_layer
from .gpu_frame import FramePreprocessor
from .preprocess import crop_face, square_box
from .tracking import EmaSmoother, IouTracker, SceneCutDetector, Track
from .types import Detection, FaceResult, PipelineResult


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
        if reason := check_values(vars(c)):
            raise ValueError(reason)
        self.classifier = classifier or Classifier(c.model or None, c.device, backend=c.backend,
                                                   threads=c.threads, keep_layer=c.explain_layer)
        self.classifier.prior_correction = c.prior_correction
        resolve_layer(self.classifier.model, c.explain_layer)  # a layer this network lacks: refused now, with the list
        self.detector = detector or create_detector(c.detector, device=self.classifier.device, config=c)
        # On CUDA with a detector that reads device tensors the frame is uploaded once: detection and preprocessing
        # both read the device copy, and only boxes cross back. Elsewhere the host path (OpenCV, ONNX Runtime) is
        # faster.
        self.device_frames = (FramePreprocessor(self.classifier.meta, self.classifier.device, self.classifier.dtype)
                              if self.classifier.device.type == "cuda" and self.detector.reads_device_frames
                              else None)
        self.scheduler = DetectionScheduler(self.detector, c)
        self.tracker = IouTracker(c.track_iou, c.track_confirm_hits, c.track_max_misses)
        self.smoother = EmaSmoother(c.smoothing)
        self.cuts = SceneCutDetector()  # a cut ends every track: no face id passes to a face of the new shot
        self._explainer = None
        self.frame_index = 0

    @property
    def class_names(self) -> list[str]:
        return self.classifier.class_names

    @property
    def model_id(self) -> str:
        return self.classifier.model_id

    def reconfigure(self, **changes) -> None:
        """Apply run-time changes (thresholds, smoothing, ...) without reloading anything."""
        unknown = [key for key in changes if not hasattr(self.config, key)]
        if unknown:
            raise ValueError(f"unknown pipeline setting '{unknown[0]}'")
        if reason := check_values(changes):
            raise ValueError(reason)
        if "explain_layer" in changes:
            resolve_layer(self.classifier.model, changes["explain_layer"])
        for key, value in changes.items():
            setattr(self.config, key, value)
        c = self.config
        with self.scheduler.detector_idle():  # never change the detector under a running background detection
            self.detector.configure(**self.detector.options_from(c))
        self.smoother.smoothing = c.smoothing
        self.classifier.prior_correction = c.prior_correction
        self.tracker.iou_threshold = c.track_iou
        self.tracker.confirm_hits = c.track_confirm_hits
        self.tracker.max_misses = c.track_max_misses

    def reset(self) -> None:
        """Forget all tracks (e.g. when the input stream restarts)."""
        self.tracker.reset()
        self.smoother.reset()
        self.cuts.reset()
        self.frame_index = 0
        self.scheduler.reset()

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
        """One uint8 BGR frame -> faces with ids, boxes, raw and smoothed probabilities (+ CAM heatmaps)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.size == 0:
            raise ValueError(f"expected a non-empty uint8 BGR HxWx3 frame, got {frame.dtype} {frame.shape}")
        result = PipelineResult()
        t = self._clock()
        if self.cuts.update(frame):
            self.smoother.forget(self.tracker.cut())
        source = self.device_frames.upload(frame) if self.device_frames is not None else frame
        tracks = self._track(source, result)
        now = self._clock()
        result.timings["detect"], t = now - t, now

        boxes = [self.crop_box(tr.detection) for tr in tracks]
        crops = [crop_face(frame, box, 0.0, square=False) for box in boxes]  # host pixels, for FaceResult.crop
        rolls = [self._roll(tr.detection) for tr in tracks]
        if any(rolls):
            result.batch = self.classifier.to_batch([rotated_crop(frame, box, roll) if roll else crop
                                                     for box, crop, roll in zip(boxes, crops, rolls)])
        elif self.device_frames is not None:
            result.batch = self.device_frames(source, boxes)
        else:
            result.batch = self.classifier.to_batch(crops)
        now = self._clock()
        result.timings["preprocess"], t = now - t, now

        self._classify(tracks, boxes, crops, rolls, frame.shape[:2], result)
        now = self._clock()
        result.timings["classify"], t = now - t, now

        if explain:
            result.heatmaps = self.explain(result)
            result.timings["explain"] = self._clock() - t
        return result

    def _roll(self, detection: Detection) -> float:
        """Degrees to rotate this face's crop by (align_faces), 0.0 when off or without eye landmarks."""
        if not self.config.align_faces or len(detection.landmarks) < 2:
            return 0.0
        return eye_roll_degrees(detection.landmarks)

    def _clock(self) -> float:
        """perf_counter after the classifier's device has finished its queued work (stage timings on CUDA)."""
        synchronize(self.classifier.device)
        return time.perf_counter()

    def _track(self, frame: np.ndarray | torch.Tensor, result: PipelineResult) -> list[Track]:
        """This frame's detections (full, refined or none) folded into the tracker; the tracks to classify."""
        scheduled = self.scheduler.next(frame, self.tracker.tracks)
        self.frame_index += 1
        result.detected = scheduled.outcome is not Outcome.CARRIED
        result.refined = scheduled.outcome is Outcome.REFINED
        if scheduled.outcome is Outcome.REFINED:  # tracked faces re-measured in this frame
            tracks = self.tracker.refresh(scheduled.refined)
        elif scheduled.outcome is Outcome.DETECTED:
            tracks = self.tracker.update(scheduled.found[: self.config.max_faces])
            self.smoother.forget(self.tracker.dropped_ids)
        else:
            tracks = self.tracker.carry()
        return tracks[: self.config.max_faces]

    def _classify(self, tracks: list[Track], boxes: list, crops: list, rolls: list[float],
                  frame_size: tuple[int, int], result: PipelineResult) -> None:
        height, width = frame_size
        raw = self.classifier.predict(result.batch)
        # the explained layer's output of this forward (classifier kept_layer), for explain(): the explainer
        # then runs only the layers above it (an explain_layer changed at run time is not kept: it runs them all)
        result.layer_output = self.classifier.layer_output if len(raw) else None
        for track, box, crop, roll, probs in zip(tracks, boxes, crops, rolls, raw):
            result.faces.append(FaceResult(
                face_id=track.face_id, detection=track.detection, crop_box=box, crop_roll=roll,
                roi=rounded_roi(box, width, height), crop=crop, raw_scores=probs,
                scores=self.smoother.update(track.face_id, probs), track_age=track.age,
                fresh=result.detected and track.updated))

    def close(self) -> None:
        """Stop the background detector thread, if any, and remove the Grad-CAM hooks."""
        self.scheduler.close()
        if self._explainer is not None:
            self._explainer.close()
            self._explainer = None

    def explainer(self) -> CamExplainer:
        """The CAM explainer of this pipeline's settings (explain_method at explain_layer), built on first use."""
        method = getattr(self.config, "explain_method", DEFAULT_METHOD)
        layer = getattr(self.config, "explain_layer", DEFAULT_LAYER)
        e = self._explainer
        if e is None or (e.method, e.requested_layer) != (method, layer):
            if e is not None:
                e.close()
            self._explainer = CamExplainer(self.classifier.model, method, layer)
        return self._explainer

    def explain(self, result: PipelineResult, classes: int | str | Sequence[int | str] | None = None
                ) -> np.ndarray:
        """CAM maps (N, S, S) in [0, 1] (each divided by its maximum) for a result's faces.

        classes=None explains each face's label in this frame (argmax of raw_scores: the map explains this frame's
        pixels, which the smoothed label does not only come from); one class (index or name) explains it for every
        face, a sequence one class per face ("why sad and not neutral?"). The classes explained are kept in
        result.heatmap_classes."""
        explainer = self.explainer()
        if result.batch is None or not result.faces:
            result.heatmap_classes = []
            return np.empty((0, self.classifier.meta.input_size, self.classifier.meta.input_size), np.float32)
        n = len(result.faces)
        if classes is None:
            wanted = [int(np.argmax(f.raw_scores)) for f in result.faces]
        elif isinstance(classes, (int, str, np.integer)):
            wanted = [classes] * n
        else:
            wanted = list(classes)
        if len(wanted) != n:
            raise ValueError(f"{len(wanted)} classes for {n} faces")
        indices = [self._class_index(c) for c in wanted]
        result.heatmap_classes = indices
        return explainer.explain(result.batch, indices, result.layer_output)

    def _class_index(self, cls: int | str) -> int:
        names = self.class_names
        if isinstance(cls, str):
            if cls not in names:
                raise ValueError(f"unknown class '{cls}' (one of: {', '.join(names)})")
            return names.index(cls)
        if not 0 <= int(cls) < len(names):
            raise ValueError(f"class index {cls} out of range 0..{len(names) - 1}")
        return int(cls)

    def warmup(self, explain: bool, batch_sizes: tuple[int, ...] = (1, 2), frame_size: tuple[int, int] = (480, 640)
               ) -> None:
        """Run every stage once per batch size on blank input (and build the Grad-CAM copy if `explain`), so the
        first frames of a stream do not pay for lazy initialisation: torch and ONNX Runtime set up each new input
        shape on first use, which cost the demo's node its first 10-20 frames (node.md, how a frame flows)."""
        self.detector.detect(np.zeros((*frame_size, 3), np.uint8))
        if explain:
            self.explainer()
        blank = np.zeros((48, 48), np.uint8)
        for size in batch_sizes:
            batch = self.classifier.to_batch([blank] * size)
            self.classifier.predict(batch)
            if explain:  # with the classifier's kept activations: the path frames take (and its ONNX export)
                self._explainer.explain(batch, [0] * size, self.classifier.layer_output)


def load_pipeline(model: str | Path | None = None, **config) -> EmotionPipeline:
    """Convenience: a pipeline with the given settings (see PipelineConfig)."""
    return EmotionPipeline(PipelineConfig(model=str(model or "default"), **config))
