"""The node's heatmap job for one face, old vs new explainer, side by side in one run (interleaved).

The job is what the node's heatmap thread does per published map (ros/emotion_node._publish_heatmap): explain the
result's batch, draw the overlay on the 640x480 frame, convert it to a sensor_msgs/Image. Rate = 1 / median job
time: the most maps per second the heatmap thread can make for one face on one thread, before heatmap_rate_hz caps
it (2 Hz by default). Not over DDS: publishing is the same for both and outside the explainer.

  scripts/run python -m benchmarks.explain_rate --repeats 60
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch

from benchmarks.explain_quality import DATA, LegacyGradCam, load_faces
from emotion_recognition_ros.core.annotate import overlay_heatmaps
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    images, names, _ = load_faces(DATA / "FER2013Test", 1)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[160:320, 240:400] = cv2.cvtColor(cv2.resize(images[0], (160, 160)), cv2.COLOR_GRAY2BGR)
    pipeline = EmotionPipeline(PipelineConfig(device="cpu", detector="mtcnn", threads=1, min_face_size=40))
    result = pipeline.process(frame)
    assert len(result.faces) == 1, "the face was not detected"
    legacy = LegacyGradCam(pipeline.classifier.model)
    classes = [int(np.argmax(result.faces[0].raw_scores))]
    jobs = {"old: pytorch-grad-cam gradcam@conv_head": lambda: legacy.explain(result.batch, classes),
            "new: hirescam@blocks.2": lambda: pipeline.explain(result)}
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(args.repeats + 3):
        for name, explain in jobs.items():
            t = time.perf_counter()
            maps = explain()
            bgr_to_image_msg(overlay_heatmaps(frame, result.faces, maps, classes, pipeline.class_names))
            times[name].append(time.perf_counter() - t)
    out = {name: {"job_ms_median": round(1000 * float(np.median(v[3:])), 2),
                  "maps_per_s": round(1 / float(np.median(v[3:])), 1)} for name, v in times.items()}
    out["protocol"] = (f"one FER+ Test face ({names[0]}) at 160 px in a 640x480 frame, MTCNN, the node's heatmap "
                       f"job (explain + overlay + Image), CPU 1 thread, {args.repeats} interleaved repeats, "
                       f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, 2 shared cores under load")
    print(json.dumps(out, indent=1))
    pipeline.close()


if __name__ == "__main__":
    main()
