"""image_source: frame sources (video, folder, synthetic) and the node over real DDS."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from conftest import CKPLUS, require_shared_data, spin_until

cv2.setNumThreads(1)


def write_video(path, n: int = 10, fps: float = 12.0, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    writer.release()
    return path


def test_video_source_reads_every_frame_and_rewinds(tmp_path):
    from emotion_recognition_ros.media.sources import open_source

    source = open_source(str(write_video(tmp_path / "clip.avi")))
    frames = list(source)
    assert len(frames) == 10 and source.fps == pytest.approx(12.0)
    assert frames[0].image.shape == (120, 160, 3) and frames[0].labels == []
    # Brightness rises by 20 per frame: MJPG is lossy, but the order must survive.
    means = [f.image.mean() for f in frames]
    assert means == sorted(means) and means[-1] - means[0] > 150
    assert source.rewind() and len(list(source)) == 10


def test_folder_source_sorts_skips_unreadable_and_loops(tmp_path):
    from emotion_recognition_ros.media.sources import open_source

    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((30, 40), 50 * i, np.uint8))
    (tmp_path / "img1b.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    warnings = []
    source = open_source(str(tmp_path), warn=warnings.append)
    values = [int(f.image[0, 0, 0]) for f in source]
    assert values == [0, 50, 100]
    assert len(warnings) == 1 and "img1b.jpg" in warnings[0]
    assert source.rewind() and source.read().image.shape == (30, 40, 3)


def test_synthetic_scenes_carry_ground_truth():
    from emotion_recognition_ros.media.sources import SyntheticSource

    require_shared_data()
    source = SyntheticSource("synthetic", width=320, height=240, hold_frames=3, ckplus=CKPLUS)
    frames = [source.read() for _ in range(6)]
    assert source.kind == "scenes"
    assert all(len(f.boxes) == 2 == len(f.labels) for f in frames)
    assert frames[0].boxes == frames[2].boxes != frames[3].boxes  # a scene is held for 3 frames
    assert not np.array_equal(frames[0].image, frames[1].image)  # with fresh sensor noise
    for frame in frames:
        for x, y, w, h in frame.boxes:
            assert 0 <= x and x + w <= 320 and 0 <= y and y + h <= 240
    # The pasted face is in the frame where the box says (gray, unlike the tinted background).
    face = frames[0].image[frames[0].boxes[0][1]:, frames[0].boxes[0][0]:][:20, :20].astype(int)
    assert np.abs(face[..., 0] - face[..., 2]).mean() < 8


def test_astronaut_ships_with_scikit_image():
    from emotion_recognition_ros.media.sources import SyntheticSource

    source = SyntheticSource("astronaut", width=640, height=480)
    a = source.read()
    assert a.image.shape == (480, 640, 3) and a.labels == ["happy"]
    x, y, w, h = a.boxes[0]
    assert 80 <= w <= 120 and 0 <= x < 640 - w


@pytest.mark.parametrize("make, problem", [
    (lambda d: d / "missing.mp4", "no such file or folder"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "folder has no images"),
    (lambda d: (d / "bad.mp4").write_bytes(b"\x00" * 4096) and d / "bad.mp4", "not a readable video"),
    (lambda d: (d / "bad.png").write_bytes(b"png?") and d / "bad.png", "could be decoded"),
])
def test_bad_sources_name_the_problem(tmp_path, make, problem):
    from emotion_recognition_ros.media.sources import SourceError, open_source

    path = make(tmp_path)
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    assert str(path) in str(info.value) and problem in str(info.value)


def test_node_publishes_stamped_frames_and_camera_info(ros_context, executor, tmp_path):
    """Over DDS: frames, encodings, frame_id, CameraInfo with the image's stamp, ground truth by stamp."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from emotion_recognition_ros.ros.image_source_node import ImageSourceNode
    from emotion_recognition_ros.ros.image_conversion import image_msg_to_bgr

    require_shared_data()
    truth_file = tmp_path / "truth.csv"
    source = ImageSourceNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="scenes"), Parameter("rate", value=30.0), Parameter("max_frames", value=8),
        Parameter("width", value=320), Parameter("height", value=240), Parameter("frame_id", value="cam_optical"),
        Parameter("encoding", value="rgb8"), Parameter("reliability", value="best_effort"),
        Parameter("wait_for_subscribers", value=1), Parameter("ground_truth_file", value=str(truth_file))])
    listener = Node("listener", context=ros_context)
    images, infos = [], []
    listener.create_subscription(Image, "/image_raw", images.append, qos_profile_sensor_data)
    listener.create_subscription(CameraInfo, "/camera_info", infos.append, qos_profile_sensor_data)
    executor.add_node(source)
    executor.add_node(listener)
    assert spin_until(executor, lambda: source.done and len(images) == 8 and len(infos) == 8, timeout=20)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == 8
    assert {m.header.frame_id for m in images} == {"cam_optical"} and images[0].encoding == "rgb8"
    assert [i.header.stamp for i in infos] == [m.header.stamp for m in images]
    assert (infos[0].width, infos[0].height) == (320, 240) and infos[0].k[0] == 320.0
    assert image_msg_to_bgr(images[0]).shape == (240, 320, 3)
    source.destroy_node()  # closes the ground-truth file
    executor.remove_node(source)
    with open(truth_file) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and {int(r["stamp_ns"]) for r in rows} == set(stamps)
    # The boxes were scaled with the frame (the scene is built at 320x240 here, so unchanged).
    assert all(0 <= int(r["x"]) and int(r["x"]) + int(r["w"]) <= 320 for r in rows)


def test_node_plays_a_video_once_without_loop(ros_context, executor, tmp_path):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from emotion_recognition_ros.ros.image_source_node import ImageSourceNode

    video = write_video(tmp_path / "clip.avi", n=6)
    source = ImageSourceNode(context=ros_context, parameter_overrides=[
        Parameter("source", value=str(video)), Parameter("rate", value=0.0), Parameter("loop", value=False),
        Parameter("wait_for_subscribers", value=1)])
    listener = Node("listener", context=ros_context)
    images = []
    listener.create_subscription(Image, "/image_raw", images.append, 10)  # reliable, like the source
    executor.add_node(source)
    executor.add_node(listener)
    assert spin_until(executor, lambda: source.done, timeout=10)
    spin_until(executor, lambda: len(images) == 6, timeout=2)
    assert len(images) == 6 and source.published == 6
    assert (images[0].width, images[0].height) == (160, 120)


def test_cli_rejects_bad_input_with_one_line(capsys, tmp_path):
    from emotion_recognition_ros.ros.image_source_node import main

    (tmp_path / "bad.avi").write_bytes(b"RIFF" + b"\x00" * 1000)
    for args, problem in ((["-p", f"source:={tmp_path / 'bad.avi'}"], "not a readable video"),
                          (["-p", f"source:={tmp_path}"], "folder has no images"),
                          # An integer on the command line is a camera index (no machine has camera 99).
                          (["-p", "source:=99", "-p", "max_frames:=1"], "camera 99: camera cannot be opened"),
                          (["-p", "rate:=1000.0"], "rate out of range"),
                          (["-p", "reliability:=sometimes"], "reliability must be")):
        assert main(["image_source", "--ros-args", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("image_source: ") and problem in err, err
