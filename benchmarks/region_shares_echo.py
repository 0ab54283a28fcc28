"""Region shares as a running emotion_node publishes them, read back with `ros2 topic echo` (issue 27).

Starts a real `emotion_node` (own process, heatmap_every_frame:=true, CPU), then for each chosen FER+ Test face
(the first PER_CLASS faces by file name of each majority label) pastes it at 160 px into a grey 640x480 frame,
starts `ros2 topic echo --once /emotion`, and publishes that frame on /image_raw every 0.2 s until the echo has
printed one EmotionArray. Writes every echo verbatim, and a table of the fields that matter here (true label,
explained_class, raw confidence of it, region_shares) to OUT.txt and OUT.md.

  scripts/run python -m benchmarks.region_shares_echo --per-class 2 --out benchmarks/results/region_shares_echo_20261206
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from benchmarks.explain_quality import DATA, load_faces

CLASSES = ("neutral", "happy", "surprise", "sadness", "anger", "disgust", "fear", "contempt")  # FER+ label order


def choose(per_class: int) -> list[tuple[str, int, np.ndarray]]:
    images, names, labels = load_faces(DATA / "FER2013Test", 10_000)
    chosen: list[tuple[str, int, np.ndarray]] = []
    for k in range(len(CLASSES)):
        chosen += [(n, k, im) for n, lab, im in zip(names, labels, images) if lab == k][:per_class]
    return chosen


def frame_of(face: np.ndarray) -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[160:320, 240:400] = cv2.cvtColor(cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC),
                                           cv2.COLOR_GRAY2BGR)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.txt (echoes) and OUT.md (table)")
    args = ap.parse_args()

    import rclpy
    from sensor_msgs.msg import Image

    from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg

    faces = choose(args.per_class)
    node_cmd = ["emotion_node", "--ros-args", "-p", "heatmap_every_frame:=true", "-p", "device:=cpu"]
    node = subprocess.Popen(node_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rclpy.init()
    pub_node = rclpy.create_node("region_shares_echo")
    pub = pub_node.create_publisher(Image, "/image_raw", 1)
    echoes, rows = [], []
    try:
        deadline = time.monotonic() + 120
        while pub_node.count_publishers("/emotion") == 0:  # the node is up and active
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"emotion_node did not start (exit {node.poll()})")
            time.sleep(0.2)
        for name, label, face in faces:
            msg = bgr_to_image_msg(frame_of(face))
            echo_cmd = ["ros2", "topic", "echo", "--once", "/emotion", "emotion_msgs/msg/EmotionArray"]
            echo = subprocess.Popen(echo_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            stop = time.monotonic() + 60
            while echo.poll() is None and time.monotonic() < stop:
                if pub_node.count_subscribers("/emotion") >= 1:  # the echo has subscribed: send the face
                    msg.header.stamp = pub_node.get_clock().now().to_msg()
                    pub.publish(msg)
                time.sleep(0.2)
            if echo.poll() is None:
                echo.kill()
            text = echo.communicate()[0]
            echoes.append(f"# {name} (FER+ majority label: {CLASSES[label]})\n$ {' '.join(echo_cmd)}\n{text}")
            docs = [d for d in yaml.safe_load_all(text.replace("---", "\n---\n")) if d]
            emotions = docs[0]["emotions"] if docs else []
            if not emotions:
                rows.append(f"| {name} | {CLASSES[label]} | no face found | | |")
                continue
            e = emotions[0]
            k = e["class_names"].index(e["explained_class"]) if e["explained_class"] else None
            shares = " / ".join(f"{s:.2f}" for s in e["region_shares"]) or "(empty)"
            p = f"{e['raw_scores'][k]:.2f}" if k is not None else ""
            rows.append(f"| {name} | {CLASSES[label]} | {e['explained_class'] or '(empty)'} | {p} | {shares} |")
    finally:
        pub_node.destroy_node()
        rclpy.shutdown()
        os.killpg(node.pid, signal.SIGINT)
        try:
            node.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    header = (f"`{' '.join(node_cmd)}`, one FER+ Test face at 160 px in a 640x480 frame per echo, {stamp} UTC\n\n"
              "| face | FER+ label | explained_class | its raw p | region_shares (eyes_brows / nose / mouth / other) |\n"
              "|---|---|---|---|---|\n")
    args.out.with_suffix(".md").write_text(header + "\n".join(rows) + "\n")
    args.out.with_suffix(".txt").write_text("\n".join(echoes))
    print(header + "\n".join(rows))


if __name__ == "__main__":
    main()
