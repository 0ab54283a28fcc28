"""What level-eyes alignment (`align_faces`) buys the node on tilted heads: FER+ faces, rolled by known angles,
through the node's own pipeline (MTCNN, crop, classifier, operating point) with alignment off and on.

    python -m benchmarks.alignment_gain --data ../shared/data/ferplus/FER2013Valid --limit 1000 --tilts 0 15 30

Each face (48 px, majority label) is upscaled to `--face-size`, given a replicated border (so no pasted edge
tells the detector where it is; training.data.rolls.face_frame), and rotated about its centre; every other face is rolled the other way. Both
settings see the same frames and the same detections (detect_every_n 1, no smoothing), so the difference is the
crop alone. Faces MTCNN does not find are counted, not scored.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from emotion_recognition_ros.core.alignment import rotated_crop
from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.core.face_data.images import LabelledFace
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
from emotion_recognition_ros.media.scenes import load_ferplus_faces
from training.data.rolls import face_frame


def tilted_frame(face: LabelledFace, angle: float, face_size: int) -> np.ndarray:
    """The face as the detector-ready frame training.data.rolls measures rolls on, rolled by `angle` degrees
    (counter-clockwise) about its centre."""
    frame = face_frame(face.image, face_size)
    side = float(frame.shape[0])  # square
    return rotated_crop(frame, (0.0, 0.0, side, side), angle)


def largest_face_label(pipeline: EmotionPipeline, frame: np.ndarray) -> str | None:
    result = pipeline.process(frame)
    if not result.faces:
        return None
    face = max(result.faces, key=lambda f: f.crop_box[2])
    return pipeline.classifier.meta.class_names[int(np.argmax(face.raw_scores))]


def score(faces: list[LabelledFace], tilts: list[float], face_size: int, model: str) -> dict:
    settings = dict(model=model, device="cpu", detect_every_n=1, smoothing=0.0, max_faces=1)
    pipelines = {align: EmotionPipeline(PipelineConfig(**settings, align_faces=align)) for align in (False, True)}
    table: dict = {}
    start = time.monotonic()
    for t, tilt in enumerate(tilts):
        counts = {"faces": 0, "missed": 0, "correct_plain": 0, "correct_aligned": 0, "only_plain": 0,
                  "only_aligned": 0}
        for k, face in enumerate(faces):
            frame = tilted_frame(face, tilt if k % 2 == 0 else -tilt, face_size)
            plain, aligned = (largest_face_label(pipelines[a], frame) for a in (False, True))
            counts["faces"] += 1
            if plain is None or aligned is None:
                counts["missed"] += 1
                continue
            counts["correct_plain"] += plain == face.label
            counts["correct_aligned"] += aligned == face.label
            counts["only_plain"] += plain == face.label != aligned  # the discordant pairs (a sign test's n)
            counts["only_aligned"] += aligned == face.label != plain
            done = t * len(faces) + k + 1
            if done % 200 == 0:
                left = (time.monotonic() - start) / done * (len(tilts) * len(faces) - done)
                print(f"  {done}/{len(tilts) * len(faces)} frames, ETA {left:.0f} s", file=sys.stderr, flush=True)
        found = counts["faces"] - counts["missed"]
        counts["accuracy_plain"] = counts["correct_plain"] / max(1, found)
        counts["accuracy_aligned"] = counts["correct_aligned"] / max(1, found)
        table[f"{tilt:g}"] = counts
    for pipeline in pipelines.values():
        pipeline.close()
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alignment_gain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a FER+ split folder (FER2013Valid for decisions)")
    parser.add_argument("--limit", type=int, default=1000, help="first N faces with a majority label")
    parser.add_argument("--tilts", type=float, nargs="+", default=[0.0, 15.0, 30.0], help="roll, degrees")
    parser.add_argument("--face-size", type=int, default=144)
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args(argv)
    set_threads(1)
    try:
        faces = load_ferplus_faces(args.data, args.limit)
    except FileNotFoundError as exc:
        print(f"alignment_gain: {exc}", file=sys.stderr)
        return 2
    table = score(faces, args.tilts, args.face_size, args.model)
    print(f"{'tilt':>6} {'faces':>6} {'missed':>7} {'plain':>8} {'aligned':>8} {'only plain':>11} {'only aligned':>13}")
    for tilt, row in table.items():
        print(f"{tilt:>6} {row['faces']:>6} {row['missed']:>7} {row['accuracy_plain']:>8.2%} "
              f"{row['accuracy_aligned']:>8.2%} {row['only_plain']:>11} {row['only_aligned']:>13}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(table, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
