"""Face ids across scene cuts: the cut detector on real frames, the tracker's size-jump rule, and the pipeline
giving a new person at the old face's place a new id (test_pipeline.py covers ids of faces that stay)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import missing_reason
from emotion_recognition_ros.core.detection import Detection
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
from emotion_recognition_ros.core.tracking import IouTracker, SceneCutDetector
from emotion_recognition_ros.core.tracking.cuts import MIN_CORRELATION
from emotion_recognition_ros.media.scenes import make_scene
from emotion_recognition_ros.media.sources import SyntheticSource


def _need_demo_faces() -> None:
    if missing_reason("ferplus") and missing_reason("ckplus48"):
        pytest.skip(f"the demo's scenes need FER+ or CK+: {missing_reason('ferplus')}")


def test_the_demo_streams_cuts_are_found_and_its_held_frames_are_not_cuts():
    _need_demo_faces()
    hold = 15
    cuts, frames = SceneCutDetector(), SyntheticSource("synthetic", seed=0, hold_frames=hold, max_frames=6 * hold)
    flagged, within, across = [], [], []
    for index, frame in enumerate(frames):
        flagged.append(cuts.update(frame.image))
        (across if index % hold == 0 and index else within).append(cuts.correlation)
    assert flagged == [index % hold == 0 and index > 0 for index in range(6 * hold)]
    assert min(within) > 0.95 and max(across) < MIN_CORRELATION  # a wide margin on both sides


def test_a_panning_camera_and_an_exposure_change_are_not_cuts():
    cuts = SceneCutDetector()
    frames = [f.image for f in SyntheticSource("astronaut", max_frames=120)]  # a real photo drifting sideways
    assert not any(cuts.update(frame) for frame in frames)
    assert not cuts.update(np.clip(frames[-1] * 0.6, 0, 255).astype(np.uint8))  # the camera darkens by 40%
    assert cuts.update(cv2.flip(frames[0], -1))  # a different view
    assert not cuts.update(np.zeros_like(frames[-1]))  # a covered lens: no face to pass on


def test_a_cut_ends_every_track_and_its_ids_are_never_reused():
    tracker = IouTracker()
    first = tracker.update([Detection((100, 100, 80, 80), 0.99), Detection((300, 100, 80, 80), 0.99)])
    assert tracker.cut() == [t.face_id for t in first]
    again = tracker.update([Detection((100, 100, 80, 80), 0.99)])
    assert again[0].face_id not in {t.face_id for t in first}


def test_a_box_that_jumps_in_size_starts_a_new_track():
    tracker = IouTracker()
    (near,) = tracker.update([Detection((100, 100, 80, 80), 0.99)])
    (same,) = tracker.update([Detection((98, 103, 84, 84), 0.99)])  # MTCNN's jitter: the same track
    assert same.face_id == near.face_id
    # IoU 0.49 (>= 0.3) but the side grew 1.43x between two frames: another face
    (far,) = tracker.update([Detection((90, 90, 120, 120), 0.99)])
    assert far.face_id != near.face_id


def test_a_new_person_where_the_old_face_was_gets_a_new_id(faces):
    """The issue's case: after a cut a different face lands on the old one's box. Without cut detection
    (the tracker before) it inherited the old id; with it, it gets a new one; a held scene keeps its id."""
    before = make_scene(faces[240:241], rng=22)
    after = make_scene([], rng=23)
    x, y, w, h = before.boxes[0]
    after.frame[y:y + h, x:x + w] = cv2.cvtColor(cv2.resize(faces[250].image, (w, h)), cv2.COLOR_GRAY2BGR)
    pipeline = EmotionPipeline(PipelineConfig(device="cpu"))
    ids = {}
    for enabled in (False, True):
        pipeline.reset()
        pipeline.cuts.enabled = enabled
        held = [pipeline.process(before.frame).faces for _ in range(3)]
        assert all(len(f) == 1 for f in held) and len({f[0].face_id for f in held}) == 1
        new = pipeline.process(after.frame).faces
        assert len(new) == 1
        ids[enabled] = (held[0][0].face_id, new[0].face_id)
    pipeline.close()
    assert ids[False][0] == ids[False][1]  # what the tracker did: the id passed to the new person
    assert ids[True][0] != ids[True][1]


def test_id_switch_benchmark_counts_none_with_cut_detection(tmp_path):
    _need_demo_faces()
    from benchmarks import id_switches

    out = tmp_path / "ids.json"
    assert id_switches.main(["--frames", "32", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["with_cut_detection"]["cuts_detected"] == 2  # scenes change at frames 15 and 30
    assert report["with_cut_detection"]["id_switches"] == 0
    assert report["without_cut_detection"]["cuts_detected"] == 0
