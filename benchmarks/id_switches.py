"""How often a face id passes to a different person: `make demo`'s scenes through the pipeline, in process.

The frames are the demo camera's (`media.sources.SyntheticSource('synthetic')`: FER+ Test faces, else CK+
faces, two per scene, each scene held 15 frames with fresh sensor noise, seed 0, 640x480), every frame
processed (the node answers ~199 of the demo's 200). Each published face is matched to a pasted face (IoU >=
0.3, benchmarks.matching); a pasted face's identity is (scene, position in the scene): a new scene brings new
people. A face id's **switch** is a frame where it is matched to a different identity than the frame before
(the id passed to another person); **ids per person** counts how many ids one identity got (a person's id
should not change while they stay in view either).

Runs twice on the same frames: with scene-cut detection (the pipeline's default, core/tracking/cuts.py) and
without it (what the tracker did before: overlap alone).

    scripts/run python -m benchmarks.id_switches [--frames 200] [--output bench_output/id_switches.json]

Exit status 2 with one line when neither FER+ Test nor CK+ is under $EMOTION_DATA_DIR.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.matching import match_boxes
from emotion_recognition_ros.core.config import PipelineConfig
from emotion_recognition_ros.core.pipeline import EmotionPipeline
from emotion_recognition_ros.media.sources import SourceError, SyntheticSource

HOLD, FACES, SEED = 15, 2, 0  # the demo camera's defaults (media.sources.open_source)


def demo_frames(count: int) -> tuple[list, str]:
    """The demo camera's first `count` frames, each with its scene index."""
    source = SyntheticSource("synthetic", 640, 480, SEED, FACES, HOLD, max_frames=count)
    if source.kind == "astronaut":
        raise SourceError("neither FER+ Test nor CK+ found under $EMOTION_DATA_DIR (the demo's scenes need one)")
    return [(i // HOLD, frame) for i, frame in enumerate(source)], source.kind


def count_switches(pipeline: EmotionPipeline, frames: list) -> dict:
    """Process `frames` in order; switches, ids per person, matched and missed faces."""
    pipeline.reset()
    last_identity: dict[int, tuple] = {}
    ids_of: dict[tuple, set] = defaultdict(set)
    switches, matched, truth_faces, cuts = [], 0, 0, 0
    for index, (scene, frame) in enumerate(frames):
        result = pipeline.process(frame.image)
        cuts += pipeline.cuts.enabled and pipeline.cuts.correlation < pipeline.cuts.min_correlation
        faces = result.faces
        truth_faces += len(frame.boxes)
        for ti, pi in match_boxes(frame.boxes, [f.roi for f in faces]):
            identity, face_id = (scene, ti), faces[pi].face_id
            matched += 1
            ids_of[identity].add(face_id)
            if face_id in last_identity and last_identity[face_id] != identity:
                switches.append({"frame": index, "face_id": face_id, "from": list(last_identity[face_id]),
                                 "to": list(identity)})
            last_identity[face_id] = identity
    return {"id_switches": len(switches), "switches": switches, "ids": len(last_identity),
            "people": len(ids_of), "people_with_several_ids": sum(len(v) > 1 for v in ids_of.values()),
            "faces_matched": matched, "faces_pasted": truth_faces, "cuts_detected": int(cuts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.id_switches", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="frames of the demo's stream (200 = its 20 s)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        frames, kind = demo_frames(args.frames)
    except SourceError as exc:
        print(f"id_switches: {exc}", file=sys.stderr)
        return 2
    pipeline = EmotionPipeline(PipelineConfig())
    report = {"command": "python -m benchmarks.id_switches " + " ".join(argv if argv is not None else sys.argv[1:]),
              "frames": len(frames), "faces": kind, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name, enabled in (("without_cut_detection", False), ("with_cut_detection", True)):
        pipeline.cuts.enabled = enabled
        report[name] = count_switches(pipeline, frames)
        r = report[name]
        print(f"{name}: {r['id_switches']} id switches, {r['ids']} ids for {r['people']} people "
              f"({r['people_with_several_ids']} with several ids), {r['faces_matched']} of {r['faces_pasted']} "
              f"pasted faces matched, {r['cuts_detected']} cuts detected")
    pipeline.close()
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
