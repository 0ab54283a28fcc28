"""The detector registry: a registered detector owns its options (taken from the pipeline's settings), its CUDA
twin and its optional abilities, so the pipeline runs a detector it has never heard of by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotion_recognition_ros.core.classifier import Classifier
from emotion_recognition_ros.core.detection import Detection, FaceDetector, create_detector, detector_for
from emotion_recognition_ros.core.detection import base
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig


class InsetFrameDetector(FaceDetector):
    """One face: the frame less an inset that comes from the pipeline's `min_face_size`."""

    name = "inset_frame"

    def __init__(self, inset: int = 0, device: torch.device | None = None):
        self.inset, self.device = inset, device

    @classmethod
    def options_from(cls, config: PipelineConfig) -> dict:
        return {"inset": config.min_face_size}

    def configure(self, inset: int | None = None) -> None:
        self.inset = self.inset if inset is None else inset

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        h, w = bgr.shape[:2]
        return [Detection((float(self.inset), float(self.inset), w - 2.0 * self.inset, h - 2.0 * self.inset), 1.0)]


class InsetFrameOnCuda(InsetFrameDetector):
    name = "inset_frame_cuda"


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, "inset_frame", base.DetectorEntry(InsetFrameDetector, "inset_frame_cuda"))
    monkeypatch.setitem(base._REGISTRY, "inset_frame_cuda", base.DetectorEntry(InsetFrameOnCuda))


def test_the_registry_entry_names_the_cuda_twin(registered):
    assert detector_for("inset_frame", torch.device("cuda", 0)) == "inset_frame_cuda"
    assert detector_for("inset_frame", "cpu") == detector_for("inset_frame", None) == "inset_frame"
    on_cuda = create_detector("inset_frame", device=torch.device("cuda", 0), inset=3)
    assert type(on_cuda) is InsetFrameOnCuda and on_cuda.inset == 3 and on_cuda.device.type == "cuda"
    assert detector_for("mtcnn", "cuda:0") == "mtcnn_torch" and detector_for("full_frame", "cuda:0") == "full_frame"


def test_the_pipeline_takes_a_detectors_options_from_its_settings_without_knowing_its_name(registered):
    config = PipelineConfig(device="cpu", detector="inset_frame", min_face_size=20, detect_every_n=3)
    pipeline = EmotionPipeline(config, classifier=Classifier(None, "cpu"))
    assert type(pipeline.detector) is InsetFrameDetector and pipeline.detector.inset == 20
    assert pipeline.detector.device.type == "cpu" and pipeline.device_frames is None
    frame = np.full((200, 240, 3), 128, np.uint8)
    first = pipeline.process(frame)
    assert first.detected and not first.refined and first.faces[0].detection.box == (20.0, 20.0, 200.0, 160.0)
    # It cannot refine (the base class's default), so between full detections the tracked box is carried.
    second = pipeline.process(frame)
    assert not second.detected and not second.refined and second.faces[0].detection.box == (20.0, 20.0, 200.0, 160.0)
    pipeline.reconfigure(min_face_size=30)
    assert pipeline.detector.inset == 30
    with pytest.raises(NotImplementedError, match="inset_frame"):
        pipeline.detector.refine(frame, [first.faces[0].detection])
