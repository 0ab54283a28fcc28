"""`make demo`: the whole workflow on one machine, in one command, without a camera.

Runs the nodes as a user runs them (as demo.launch.py starts them), each in its own process: the emotion node
with the shipped model, the camera (image_source: synthetic scenes by default, or `--source` a video, an image
folder or a camera) offering `--duration` x `--rate` frames, and the recorder (`ros2 bag record` where rosbag2 is
installed, else bag_recorder). This process only watches: it saves the node's annotated and heatmap frames and
reads its /diagnostics. Then it evaluates the bag with evaluate_bag (against the scenes' ground truth when the
faces are synthetic), prints a summary and leaves under `--out`: the bag, annotated and heatmap frames, a contact
sheet PNG, the evaluation (report.json, PNGs) and each process's log.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ...core.model_io import ModelLoadError, read_metadata, resolve_model
from ...media.sources import SYNTHETIC_KINDS, SourceError, open_source
from ...ros.spin import stop_on_signals
from ...ros.transport import apply_default_transport
from ..bag_io import BagError
from ..evaluate_bag import EvaluationError
from ..processes import NodeProcess
from .summary import summarize_run
from .supervision import (MATCH_TIMEOUT_S, START_TIMEOUT_S, STOP_GRACE_S, Demo, camera_command,
                          emotion_node_command, recorder_command, topics_in)
from .watcher import wait, wait_until_settled

DEFAULT_OUT = Path("demo_output")
OUTPUTS = ("bag", "annotated", "heatmap", "eval", "truth.csv", "contact_sheet.png", "summary.txt",
           "emotion_node.log", "image_source.log", "recorder.log")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion_demo", description=__doc__.split("\n\n")[0].replace("`", ""))
    parser.add_argument("--source", default="synthetic",
                        help="synthetic (default: FER+ Test faces when ../shared/data has FER+, else CK+ scenes, "
                             "else scikit-image's astronaut) | ferplus | scenes (CK+) | astronaut | VIDEO | "
                             "IMAGE_FOLDER | camera INDEX or /dev/videoN")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of frames to offer (default 20): the camera publishes duration x rate frames")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames per second offered (default: a video's own rate, else 10)")
    parser.add_argument("--width", type=int, default=640,
                        help="frame width (default 640; 0 with --height 0 = the source's own size)")
    parser.add_argument("--height", type=int, default=0,
                        help="frame height (default 0: from the width, keeping the aspect ratio; synthetic: 480)")
    parser.add_argument("--model", default="", help="default | ckplus6 | a model file (default: the node's, default)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--namespace", default="", help="namespace of the nodes and topics (default: the root)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default demo_output/)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage")
    parser.add_argument("--recorder", choices=("auto", "ros2bag", "bag_recorder"), default="auto",
                        help="auto (default): `ros2 bag record` when rosbag2 is installed, else bag_recorder")
    parser.add_argument("--record-overlays", action="store_true",
                        help="also record emotion/annotated and emotion/heatmap in the bag (3x its size)")
    parser.add_argument("--save-every", type=int, default=5,
                        help="save the annotated and heatmap image of every Nth result (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic scenes")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra emotion_node parameter, e.g. --set publish_heatmap:=false (repeatable)")
    return parser


def prepare_out(out: Path) -> None:
    """Remove the previous demo's outputs (only those: the folder may hold other things)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_inputs(args) -> tuple[str, float, bool]:
    """Fail here, in one line, on a model or a source that cannot work; (source name, rate, synthetic)."""
    if args.model:
        read_metadata(resolve_model(args.model))
    source = open_source(args.source, width=args.width or 640, height=args.height or 480, seed=args.seed)
    try:
        return source.name, float(args.rate or source.fps or 10.0), str(args.source) in SYNTHETIC_KINDS
    finally:
        source.close()


def run(args) -> dict[str, Any]:
    prepare_out(args.out)
    source_name, rate, synthetic = check_inputs(args)
    offered = max(1, round(args.duration * rate))
    topics = topics_in(args.namespace)
    demo = Demo(args, topics)
    try:
        demo.start("emotion_node", emotion_node_command(args))
        demo.wait_for("the emotion node did not start", lambda: demo.watcher.count_publishers(topics["emotion"]) > 0,
                      "emotion_node", diagnosis=lambda: demo.seen_by_watcher("emotion", "publisher"))
        recorder, argv = recorder_command(args, topics)
        demo.start("recorder", argv)
        demo.wait_for(f"{recorder} did not subscribe to the node's topics", lambda: all(
            demo.subscribed_by_others(topics[key]) for key in ("emotion", "diagnostics")), "recorder",
            MATCH_TIMEOUT_S, diagnosis=lambda: demo.seen_by_watcher("emotion", "subscriber"))
        camera = demo.start("image_source", camera_command(args, rate, offered, synthetic))
        print(f"demo: offering {offered} frames of {source_name} at {rate:g} fps ({recorder} records) ...",
              flush=True)
        t0 = time.monotonic()
        # A DDS stall shows here: the camera waits for subscribers that never match. Said within
        # MATCH_TIMEOUT_S, with what is missing, instead of after the whole run's time.
        demo.wait_for("no camera frame reached the emotion node", demo.first_frame_reached_node, "image_source",
                      MATCH_TIMEOUT_S, diagnosis=lambda: demo.seen_by_watcher("camera", "subscriber"))
        if not wait(lambda: not camera.alive(), args.duration * 3 + START_TIMEOUT_S):
            raise RuntimeError(f"the camera did not finish its {offered} frames (log: {camera.log_path})")
        wall = time.monotonic() - t0
        wait_until_settled(demo.collector)
    finally:
        demo.stop()
        args.teardown_overran = demo.teardown_overran
    return {"collector": demo.collector, "offered": offered, "rate": rate, "wall_s": wall, "source": source_name,
            "synthetic": synthetic, "bag": args.out / "bag", "recorder": recorder, "topics": topics}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration <= 0 or args.rate < 0:
        print("emotion_demo: --duration must be positive and --rate not negative", file=sys.stderr)
        return 2
    # Before rclpy starts a participant, and inherited by every process started here: the package's DDS
    # transports (ros/transport.py); a user's own setting wins. ROS_AUTOMATIC_DISCOVERY_RANGE is left alone: with
    # LOCALHOST, rmw_fastrtps replaces the builtin transports by UDP on 127.0.0.1, and the node in its own
    # process lost 197 of 200 frames (docs/node.md, DDS transport).
    apply_default_transport()
    # SIGTERM too ends the processes it started and keeps the bag. Stopping them one after another may take
    # each its own grace; if even that is not enough, none of them outlives the demo.
    stop_on_signals(STOP_GRACE_S, before_exit=NodeProcess.kill_all)
    args.teardown_overran = False
    code = 0
    try:
        info = run(args)
        print(summarize_run(args, info))
    except (SourceError, ModelLoadError, BagError, EvaluationError, ValueError, RuntimeError) as exc:
        if args.debug:
            raise
        print(f"emotion_demo: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("emotion_demo: interrupted", file=sys.stderr)
        code = 130
    if args.teardown_overran and argv is None:
        # The watcher's DDS teardown is stuck in a thread (Demo.stop); the interpreter's exit would wait on it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
