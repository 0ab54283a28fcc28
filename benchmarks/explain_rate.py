"""The node's heatmap job for one face, old vs new explainer, side by side in one run (interleaved).

The job is what the node's heatmap thread does per published map (ros/emotion_node._publish_heatmap): explain the
result's batch, draw the overlay on the 640x480 frame, convert it to a sensor_msgs/Image. Rate = 1 / median job
time: the most maps per second the heatmap thread can make for one face on one thread, before heatmap_rate_hz caps
it (2 Hz by default). Not over DDS: publishing is the same for both and outside the explainer.

Jobs: the old explainer (pytorch-grad-cam Grad-CAM at conv_head, core/explain.py before issue 27); the new
default as the node runs it (`pipeline.explain(result)`: the classifier's kept blocks.2 output, ONNX Runtime's
gradient above it); and the new default on its autograd path (`explainer.explain(batch)`: the whole network
again, what the node does where the fast path does not apply). Then explain-only cost per face at batches of 1, 2
and 4 (the first FER+ Test faces' 96 px crops), the same three ways. The load average is recorded before and after.

  scripts/run python -m benchmarks.explain_rate --repeats 60 --out docs/explain/rate.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.explain_quality import DATA, LegacyGradCam, load_faces
from emotion_recognition_ros.core.annotate import overlay_heatmaps
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
from emotion_recognition_ros.ros.image_conversion import bgr_to_image_msg

OLD, NODE, AUTOGRAD = ("old: pytorch-grad-cam gradcam@conv_head", "new: hirescam@blocks.2 (node path)",
                       "new: hirescam@blocks.2 (autograd path)")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def interleaved(jobs: dict, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeats + 3):
        for name, job in jobs.items():
            t = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - t)
    return {k: v[3:] for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    load_before = loadavg()
    images, names, _ = load_faces(DATA / "FER2013Test", 4)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[160:320, 240:400] = cv2.cvtColor(cv2.resize(images[0], (160, 160)), cv2.COLOR_GRAY2BGR)
    pipeline = EmotionPipeline(PipelineConfig(device="cpu", detector="mtcnn", threads=1, min_face_size=40))
    pipeline.warmup(explain=True)  # as the node does with publish_heatmap (builds the ONNX gradient program)
    result = pipeline.process(frame)
    assert len(result.faces) == 1, "the face was not detected"
    legacy = LegacyGradCam(pipeline.classifier.model)
    explainer = pipeline.explainer()
    classes = [int(np.argmax(result.faces[0].raw_scores))]

    def job(explain):
        def run():
            maps = explain()
            bgr_to_image_msg(overlay_heatmaps(frame, result.faces, maps, classes, pipeline.class_names))
        return run

    times = interleaved({OLD: job(lambda: legacy.explain(result.batch, classes)),
                         NODE: job(lambda: pipeline.explain(result)),
                         AUTOGRAD: job(lambda: explainer.explain(result.batch, classes))}, args.repeats)
    out: dict = {name: {"job_ms_median": round(1000 * float(np.median(v)), 2),
                        "maps_per_s": round(1 / float(np.median(v)), 1)} for name, v in times.items()}
    # explain only, ms per face, batches of 1, 2, 4 (classifier outputs from one predict of the batch)
    cost: dict[str, dict[int, float]] = {k: {} for k in (OLD, NODE, AUTOGRAD)}
    for n in (1, 2, 4):
        crops = [cv2.resize(im, (96, 96)) for im in images[:n]]
        batch = pipeline.classifier.to_batch(crops)
        pipeline.classifier.predict(batch)
        kept, cls = pipeline.classifier.layer_output, [0] * n
        t = interleaved({OLD: lambda: legacy.explain(batch, cls), NODE: lambda: explainer.explain(batch, cls, kept),
                         AUTOGRAD: lambda: explainer.explain(batch, cls)}, max(10, args.repeats // 2))
        for name, v in t.items():
            cost[name][n] = round(1000 * float(np.median(v)) / n, 2)
    out["explain_ms_per_face_at_batch_1_2_4"] = {k: [v[1], v[2], v[4]] for k, v in cost.items()}
    out["node_path_active"] = explainer._ort is not None
    out["protocol"] = (f"one FER+ Test face ({names[0]}) at 160 px in a 640x480 frame, MTCNN, the node's heatmap "
                       f"job (explain + overlay + Image), CPU 1 thread, {args.repeats} interleaved repeats, "
                       f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, 2 shared cores; load average "
                       f"(1/5/15 min) before {load_before}, after {loadavg()}")
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    legacy.close()
    pipeline.close()


if __name__ == "__main__":
    main()
