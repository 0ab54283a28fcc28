"""The CUDA path, checked on a GPU: torch MTCNN, device preprocessing, fp16 classifier and Grad-CAM on CUDA, each
held to the CPU path. Skipped without CUDA (CI has none); scripts/gpu_check.sh runs these on the device machine.

Tolerances are wider than the CPU-vs-OpenCV ones (test_mtcnn_torch.py, test_gpu_frame.py) because CUDA sums in
a different order, convolutions may use TF32, and the classifier runs in fp16.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CKPLUS, PHOTOS

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: run scripts/gpu_check.sh on a GPU machine"),
    pytest.mark.skipif(not CKPLUS.is_dir(), reason=f"CK+ faces not found at {CKPLUS} (../shared)"),
]


@pytest.fixture(scope="module")
def frames(faces):
    import cv2

    from benchmarks.frames import build_frame_sets

    photos = [cv2.imread(str(p)) for p in sorted(PHOTOS.glob("*.jpg"))] if PHOTOS.is_dir() else []
    scenes = [s.frame for fs in build_frame_sets(["640x480", "1280x720"], [1, 4], 3, faces=faces, seed=7)
              for s in fs.scenes]
    return [p for p in photos if p is not None] + scenes


@pytest.fixture(scope="module")
def cpu_pipeline(faces):
    from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig

    return EmotionPipeline(PipelineConfig(device="cpu", backend="torch"))


@pytest.fixture(scope="module")
def cuda_pipeline(faces):
    from emotion_recognition_ros.core.detection import create_detector
    from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig

    config = PipelineConfig(device="cuda")
    return EmotionPipeline(config, detector=create_detector("mtcnn_torch", device="cuda", config=config))


def test_torch_mtcnn_on_cuda_agrees_with_cv2_mtcnn(frames):
    from benchmarks.agreement import Agreement
    from emotion_recognition_ros.core.detection.mtcnn_torch import TorchMtcnnDetector
    from emotion_recognition_ros.core.detection.mtcnn import MtcnnDetector

    reference, ours = MtcnnDetector(min_face_size=60), TorchMtcnnDetector(min_face_size=60, device="cuda")
    agreement = Agreement()
    for frame in frames:
        agreement.add(reference.detect(frame), ours.detect(frame))
    s = agreement.summary()
    print("cuda detect agreement:", s)
    assert s["same_count_frames"] == s["frames"]
    assert s["iou"]["min"] >= 0.8 and s["iou"]["median"] >= 0.98
    assert s["landmark_pct_of_width"]["max"] <= 10.0 and s["score_abs_diff"]["max"] <= 0.02


def test_detector_and_preprocessor_share_one_upload(frames, cuda_pipeline):
    from emotion_recognition_ros.core.gpu_frame import FramePreprocessor

    preprocessor = FramePreprocessor(cuda_pipeline.classifier.meta, "cuda")
    frame = frames[-1]
    on_gpu = preprocessor.upload(frame)
    assert on_gpu.is_cuda and on_gpu.dtype == torch.uint8
    detections = cuda_pipeline.detector.detect(on_gpu)
    assert [d.box for d in detections] == [d.box for d in cuda_pipeline.detector.detect(frame)] and detections
    batch = preprocessor(on_gpu, [cuda_pipeline.crop_box(d) for d in detections])
    assert batch.is_cuda and batch.dtype == torch.float16 and batch.shape[0] == len(detections)


def test_preprocessing_on_cuda_matches_the_cpu(frames, cpu_pipeline):
    from emotion_recognition_ros.core.gpu_frame import FramePreprocessor

    meta = cpu_pipeline.classifier.meta
    cpu, cuda = FramePreprocessor(meta, "cpu"), FramePreprocessor(meta, "cuda")
    edge = [(-20.0, -15.0, 70.0, 70.0), (100.0, 100.0, 30.0, 30.0)]
    for frame in frames:
        boxes = [cpu_pipeline.crop_box(d) for d in cpu_pipeline.detector.detect(frame)] + edge
        want, got = cpu(frame, boxes), cuda(frame, boxes).float().cpu()
        levels = (got - want).abs() * 255 * meta.std[0]
        assert float(levels.max()) <= 1.0 + 1e-2 and float((levels > 0.5).float().mean()) <= 0.01


def test_fp16_classifier_on_cuda_matches_fp32_on_the_cpu(frames, cpu_pipeline, cuda_pipeline):
    cuda_classifier = cuda_pipeline.classifier
    assert cuda_classifier.device.type == "cuda" and cuda_classifier.dtype == torch.float16
    crops = []
    from emotion_recognition_ros.core.preprocess import crop_face

    for frame in frames:
        crops += [crop_face(frame, cpu_pipeline.crop_box(d), 0.0, square=False)
                  for d in cpu_pipeline.detector.detect(frame)]
    assert len(crops) >= len(frames)
    want = cpu_pipeline.classifier.classify(crops)
    got = cuda_classifier.classify(crops)
    assert float(np.abs(got - want).max()) <= 0.02
    assert float((got.argmax(1) == want.argmax(1)).mean()) >= 0.95


def test_gradcam_on_cuda_matches_the_cpu(frames, cpu_pipeline, cuda_pipeline):
    result = cuda_pipeline.process(frames[-1], explain=True)
    assert result.faces and result.heatmaps is not None
    maps = result.heatmaps
    assert maps.shape == (len(result.faces), 96, 96) and np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    cpu_maps = cpu_pipeline.explain(_same_faces_on(cpu_pipeline, result))
    for ours, theirs in zip(maps, cpu_maps):
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= 0.9


def _same_faces_on(pipeline, result):
    """The CUDA result's faces, as a result whose batch lives on `pipeline`'s device."""
    from dataclasses import replace

    batch = result.batch.float().cpu().contiguous(memory_format=torch.channels_last).to(pipeline.classifier.dtype)
    return replace(result, batch=batch)


def test_pipeline_on_cuda_finds_the_faces_the_cpu_finds(frames, cpu_pipeline, cuda_pipeline):
    from emotion_recognition_ros.core.tracking.tracker import iou

    for frame in frames:
        cpu_pipeline.reset()
        cuda_pipeline.reset()
        want, got = cpu_pipeline.process(frame).faces, cuda_pipeline.process(frame).faces
        assert len(got) == len(want)
        for face in want:
            best = max(got, key=lambda g: iou(g.roi, face.roi))
            assert iou(best.roi, face.roi) >= 0.8
