"""evaluate_bag on labelled bags built here from generated scenes with known labels.

The bags are written with our recorder's writer (bag_io.open_writer) from real rclpy messages serialised by
rclpy, as a recorder would store them; the "results" are the scenes' true labels with a chosen set of
faces mislabelled and frames dropped, so every expected number is known exactly. End-to-end bags through
the real node are covered by test_demo.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CLASSES = ["anger", "disgust", "fear", "happy", "sadness", "surprise"]
BASE_NS = 1_800_000_000_000_000_000
PERIOD_NS = 100_000_000  # 10 fps
LATENCY_NS = 40_000_000
HOLD_FRAMES = 4  # frames per scene, as a camera watching still people


def scene_faces(rng: np.random.Generator) -> tuple[list[tuple[int, int, int, int]], list[str]]:
    """Two face boxes (left and right half of a 320x240 frame) of two different classes.

    evaluate_bag never looks at pixels, so no dataset is needed: the boxes and labels are the ground truth."""
    labels = [str(c) for c in rng.choice(CLASSES, size=2, replace=False)]
    boxes = [(int(rng.integers(10, 60)) + 160 * k, int(rng.integers(20, 80)), 90, 110) for k in range(2)]
    return boxes, labels


def scene_image(boxes, rng: np.random.Generator) -> np.ndarray:
    image = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
    for x, y, w, h in boxes:
        image[y:y + h, x:x + w] = 180
    return image


def write_labelled_bag(path: Path, storage: str, n_frames: int = 12, drop: set[int] = frozenset(),
                       wrong: set[int] = frozenset(), emotion_stamp_offset_ns: int = 0,
                       topics: tuple[str, ...] = ("/image_raw", "/emotion")) -> list[dict]:
    """Frames of two faces each at 10 fps; an EmotionArray 40 ms after each frame except `drop`.

    Faces in frames listed in `wrong` get the next class's label. Returns the ground truth rows."""
    import rclpy.serialization
    from emotion_msgs.msg import Emotion, EmotionArray

    from emotion_recognition_ros.tools.bag_io import open_writer, typestore
    from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg

    rng = np.random.default_rng(3)
    store = typestore()
    writer = open_writer(path, storage)
    image_conn = writer.add_connection(topics[0], "sensor_msgs/msg/Image", typestore=store)
    emotion_conn = writer.add_connection(topics[1], "emotion_msgs/msg/EmotionArray", typestore=store)
    truth = []
    for i in range(n_frames):
        if i % HOLD_FRAMES == 0:
            boxes, labels = scene_faces(rng)
        stamp = BASE_NS + i * PERIOD_NS
        image = bgr_to_image_msg(scene_image(boxes, rng))
        image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        image.header.frame_id = "camera"
        writer.write(image_conn, stamp + 5_000_000, rclpy.serialization.serialize_message(image))
        for (x, y, w, h), label in zip(boxes, labels):
            truth.append({"stamp_ns": stamp, "x": x, "y": y, "w": w, "h": h, "label": label})
        if i in drop:
            continue
        result = EmotionArray(model_id="test@000000000000")
        result.header = image.header
        result.header.stamp.sec, result.header.stamp.nanosec = divmod(stamp + emotion_stamp_offset_ns,
                                                                      1_000_000_000)
        for k, ((x, y, w, h), label) in enumerate(zip(boxes, labels)):
            predicted = CLASSES[(CLASSES.index(label) + 1) % 6] if i in wrong else label
            e = Emotion(face_id=k + 1, label=predicted, confidence=0.9, class_names=CLASSES,
                        scores=[0.9 if c == predicted else 0.02 for c in CLASSES])
            # Detections are a little larger than the pasted faces, as real detector boxes are.
            e.roi.x_offset, e.roi.y_offset = max(0, x - 4), max(0, y - 6)
            e.roi.width, e.roi.height = w + 8, h + 10
            result.emotions.append(e)
        writer.write(emotion_conn, stamp + LATENCY_NS, rclpy.serialization.serialize_message(result))
    writer.close()
    return truth


def write_truth(path: Path, rows: list[dict]) -> Path:
    lines = ["stamp_ns,x,y,w,h,label"] + [f"{r['stamp_ns']},{r['x']},{r['y']},{r['w']},{r['h']},{r['label']}"
                                          for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_labelled_bag_evaluates_with_exact_numbers(tmp_path, storage):
    from emotion_recognition_ros.tools.evaluate_bag import main

    bag = tmp_path / "bag"
    truth = write_truth(tmp_path / "truth.csv",
                        write_labelled_bag(bag, storage, n_frames=12, drop={3, 7, 8}, wrong={0, 1}))
    out = tmp_path / "eval"
    assert main([str(bag), "--truth", str(truth), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 12 and report["paired_results"] == 9 and report["dropped_frames"] == 3
    assert report["drop_rate"] == pytest.approx(3 / 12)
    assert report["latency_ms"]["p50"] == pytest.approx(LATENCY_NS / 1e6)
    assert report["input_fps"] == pytest.approx(10.0)
    # 9 results between frames 0 and 11: 8 intervals over 1.1 s.
    assert report["processed_fps"] == pytest.approx(8 / 1.1)
    acc = report["accuracy"]
    assert acc["scored_faces"] == 18 and acc["missed_faces"] == 0
    assert acc["truth_rows_on_dropped_frames"] == 6
    assert acc["accuracy"] == pytest.approx(14 / 18)
    matrix = np.array(acc["confusion"])
    assert matrix.sum() == 18 and np.trace(matrix) == 14
    assert acc["labels"][:6] == CLASSES
    confusion = json.loads((out / "confusion.json").read_text())
    assert confusion["confusion"] == acc["confusion"]
    for png in ("timeline.png", "confusion.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["tracks"]) == {"1", "2"} and report["tracks"]["1"]["frames"] == 9


def test_frame_level_truth_by_time(tmp_path):
    """`time_s,label` rows (labelling a video by time) match the nearest frame and score every face in it."""
    from emotion_recognition_ros.tools.evaluate_bag import evaluate

    bag = tmp_path / "bag"
    rows = write_labelled_bag(bag, "mcap", n_frames=6)
    first_face = {}
    for r in rows:
        first_face.setdefault(r["stamp_ns"], r["label"])
    lines = ["time_s,label"] + [f"{(s - BASE_NS) / 1e9 + 0.02:.3f},{label}" for s, label in first_face.items()]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    report = evaluate(bag, truth=tmp_path / "t.csv")
    acc = report["accuracy"]
    # A frame label is compared with both faces of its frame: right for the first face, and for the
    # second only when the two happen to share a class.
    agree = sum(1 for r in rows if r["label"] == first_face[r["stamp_ns"]])
    assert acc["scored_faces"] == 12 and acc["accuracy"] == pytest.approx(agree / 12)


def test_json_truth_equals_csv_truth(tmp_path):
    from emotion_recognition_ros.tools.evaluate_bag import evaluate

    bag = tmp_path / "bag"
    rows = write_labelled_bag(bag, "mcap", n_frames=5, wrong={2})
    faces = [{"stamp_ns": r["stamp_ns"], "box": [r["x"], r["y"], r["w"], r["h"]], "label": r["label"]} for r in rows]
    (tmp_path / "t.json").write_text(json.dumps({"faces": faces}))
    by_json = evaluate(bag, truth=tmp_path / "t.json")["accuracy"]
    by_csv = evaluate(bag, truth=write_truth(tmp_path / "t.csv", rows))["accuracy"]
    assert by_json == by_csv and by_json["accuracy"] == pytest.approx(8 / 10)


def _run(capsys, argv):
    from emotion_recognition_ros.tools.evaluate_bag import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_bag_without_the_topics(tmp_path, capsys):
    bag = tmp_path / "bag"
    write_labelled_bag(bag, "mcap", n_frames=2, topics=("/other/image", "/emotion"))
    code, err = _run(capsys, [bag])
    assert code == 2 and len(err.splitlines()) == 1
    assert "no image topic /image_raw" in err and "/other/image" in err
    code, err = _run(capsys, [bag, "--image-topic", "/other/image", "--emotion-topic", "/nope"])
    assert code == 2 and "no emotion topic /nope" in err


def test_mismatched_stamps(tmp_path, capsys):
    bag = tmp_path / "bag"
    rows = write_labelled_bag(bag, "sqlite3", n_frames=3, emotion_stamp_offset_ns=1_000)
    code, err = _run(capsys, [bag])
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("evaluate_bag: mismatched stamps")
    # Results paired, but the ground truth belongs to another recording.
    bag2 = tmp_path / "bag2"
    write_labelled_bag(bag2, "sqlite3", n_frames=3)
    for r in rows:
        r["stamp_ns"] += 3_600_000_000_000
    code, err = _run(capsys, [bag2, "--truth", write_truth(tmp_path / "t.csv", rows)])
    assert code == 2 and "mismatched stamps: none of the 6 ground-truth rows" in err


def test_unusable_inputs_name_the_problem(tmp_path, capsys):
    code, err = _run(capsys, [tmp_path / "missing"])
    assert code == 2 and err == f"evaluate_bag: {tmp_path / 'missing'}: no such bag"
    (tmp_path / "notabag").mkdir()
    code, err = _run(capsys, [tmp_path / "notabag"])
    assert code == 2 and "not a rosbag2 folder" in err
    bag = tmp_path / "bag"
    write_labelled_bag(bag, "mcap", n_frames=2)
    (tmp_path / "bad.csv").write_text("stamp_ns,label\nabc,happy\n")
    code, err = _run(capsys, [bag, "--truth", tmp_path / "bad.csv"])
    assert code == 2 and "bad.csv line 2" in err and "integer" in err
    (tmp_path / "cols.csv").write_text("when,what\n1,happy\n")
    code, err = _run(capsys, [bag, "--truth", tmp_path / "cols.csv"])
    assert code == 2 and "must name 'label'" in err
    # A truncated storage file: reading fails with the bag's name, not a traceback.
    storage = next(bag.glob("*.mcap"))
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    code, err = _run(capsys, [bag])
    assert code == 2 and len(err.splitlines()) == 1 and str(bag) in err
