"""`make bench` / `python -m benchmarks.bench`: speed, resources and accuracy of the emotion node as a user
experiences it, next to a node built on the PyPI `fer` package, on the same frames over the same DDS.

For each frame size x faces per frame (labelled faces pasted on textured backgrounds: FER+ Test faces, which the
8-class default model never trained on, when ../shared/data has FER+; else, or with --ckplus, CK+ faces):
  1. per-stage latency in-process with the node's own code (decode, detect, preprocess, classify,
     Grad-CAM, publish): p50/p95 and pipeline fps; GPU memory on CUDA;
  2. end to end over DDS: our node and then the peer node, each in its own process, fed closed loop
     (next frame when the last answer arrived): fps, latency from header stamps, CPU, RSS, and accuracy on
     the pasted faces (IoU >= 0.3 match; a missed face counts wrong);
  3. optionally (--rate) open loop at a camera rate: answered vs. dropped frames, latency.
Writes bench_output/bench.json, bench_output/bench.png and node logs under bench_output/logs/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import torch
import yaml
from tqdm import tqdm

from emotion_recognition_ros.core.device import set_threads

from . import dds, peer_env, report
from .frames import FACE_COUNTS, SIZES, build_frame_sets, held_stream, parse_size
from .stages import InProcessNode, measure_stages
from .stats import ProcessMonitor, ratio

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "bench_output"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a fast subset: 640x480 with 1 face, 6 frames, 4 s per DDS run (overridable below)")
    p.add_argument("--sizes", help=f"comma-separated WxH frame sizes (default {','.join(SIZES)})")
    p.add_argument("--faces", help=f"comma-separated faces per frame (default {','.join(map(str, FACE_COUNTS))})")
    p.add_argument("--frames", type=int, help="distinct frames per (size, faces) set (default 24; quick 6)")
    p.add_argument("--duration", type=float, help="seconds per DDS run, at least one pass of the set (default 10; quick 4)")
    p.add_argument("--repeats", type=int, default=None, help="passes over the set for the stage timings (default 3; quick 2)")
    p.add_argument("--rate", type=float, default=0.0, help="also run open loop at this many frames/s (e.g. 30)")
    p.add_argument("--device", default="auto", help="our node's device: auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=None, help="our node's intra-op threads (default: the node's)")
    p.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra parameter for our node, e.g. detect_scale:=0.5 (repeatable)")
    p.add_argument("--heatmaps", action="store_true",
                   help="subscribe to /emotion/heatmap during the DDS runs (the node computes Grad-CAM only then)")
    p.add_argument("--no-peer", action="store_true", help="skip the fer-based peer (no .venv-peer needed)")
    p.add_argument("--no-dds", action="store_true", help="only the in-process stage timings")
    p.add_argument("--no-stages", action="store_true", help="only the DDS runs")
    p.add_argument("--transport", default="shm",
                   help="DDS transport: shm (benchmarks/fastdds_shm.xml, default), env (as set by the caller), "
                        "or a FASTDDS_BUILTIN_TRANSPORTS value such as LARGE_DATA")
    p.add_argument("--hold", type=int, default=5,
                   help="over DDS each scene is shown this many frames in a row, like a camera watching people "
                        "(a new random scene every frame would only measure how fast tracking recovers; default 5)")
    p.add_argument("--scenes-every-frame", action="store_true",
                   help="a new scene (faces at new places) on every frame over DDS, like people walking in, camera "
                        "cuts or fast pans: the case where tracking cannot skip the detector (same as --hold 1)")
    p.add_argument("--motion", type=float, default=4.0,
                   help="while a scene is held the camera pans this many pixels a frame (random direction per "
                        "scene), so trackers must follow the faces (default 4; 0 = identical frames)")
    p.add_argument("--noise", type=float, default=2.0,
                   help="Gaussian sensor noise (std, grey levels) on every held frame (default 2; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="frame generation seed")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="output folder (default bench_output/)")
    p.add_argument("--ckplus", type=Path, default=None,
                   help="paste CK+48 faces from this folder (default: FER+ Test faces when ../shared/data has FER+, "
                        "else ../shared/data/ckplus48); score the six-class model with --ckplus and ckplus6")
    args = p.parse_args(argv)
    if args.scenes_every_frame:
        args.hold = 1
    q = args.quick
    args.sizes = [s.strip() for s in (args.sizes or ("640x480" if q else ",".join(SIZES))).split(",") if s.strip()]
    for s in args.sizes:
        parse_size(s)  # fail early on a typo
    try:
        args.faces = [int(v) for v in (args.faces or ("1" if q else ",".join(map(str, FACE_COUNTS)))).split(",")]
    except ValueError:
        p.error(f"--faces must be comma-separated integers, got '{args.faces}'")
    if any(not 0 <= f <= 8 for f in args.faces):
        p.error("--faces: 0..8 faces per frame")
    args.frames = args.frames or (6 if q else 24)
    args.duration = args.duration if args.duration is not None else (4.0 if q else 10.0)
    args.repeats = args.repeats or (2 if q else 3)
    if args.frames < 1 or args.duration < 0 or args.repeats < 1 or args.hold < 1:
        p.error("--frames, --repeats and --hold must be >= 1, --duration >= 0")
    if args.motion < 0 or args.noise < 0:
        p.error("--motion and --noise must be >= 0")
    for item in args.node_param:
        if ":=" not in item:
            p.error(f"--node-param expects NAME:=VALUE, got '{item}'")
    return args


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def gpu_description(device: str) -> str | None:
    if device.startswith("cpu") or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def our_node_spec(args: argparse.Namespace) -> dds.NodeSpec:
    params = [f"device:={args.device}"]
    if args.threads:
        params.append(f"threads:={args.threads}")
    params += args.node_param
    argv = dds.python_module("emotion_recognition_ros.ros.emotion_node", "--ros-args")
    for item in params:
        argv += ["-p", item]
    return dds.NodeSpec("ours", argv)


def peer_node_spec() -> dds.NodeSpec:
    peer_env.ensure_peer_env()
    return dds.NodeSpec("peer", dds.python_module("benchmarks.peer_node"), env=peer_env.peer_environment())


def node_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--device/--threads/--node-param as parameter overrides for the in-process node."""
    out: dict[str, Any] = {"device": args.device}
    if args.threads:
        out["threads"] = args.threads
    for item in args.node_param:
        name, value = item.split(":=", 1)
        out[name] = yaml.safe_load(value)  # the same typing as `-p name:=value`
    return out


def run_stages(args, frame_sets, msgs_by_key) -> list[dict]:
    node = InProcessNode(node_overrides(args))
    try:
        total = sum(len(fs.scenes) * args.repeats for fs in frame_sets)
        with tqdm(total=total, desc="stages (in-process)", unit="frame", leave=False) as bar:
            return [measure_stages(node.node, fs, msgs_by_key[fs.key], args.repeats, progress=bar).as_dict()
                    for fs in frame_sets]
    finally:
        node.close()


def gpu_memory_of(pid: int) -> float | None:
    """MiB the process uses on the GPU per nvidia-smi (None without one)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = [float(line.split(",")[1]) for line in out.splitlines() if line.split(",")[0].strip() == str(pid)]
    return sum(used) if used else None


def run_node(args, spec: dds.NodeSpec, frame_sets, msgs_by_key, truth_by_key, driver: dds.Driver,
             log_dir: Path) -> tuple[list[dict], list[dict], dict]:
    """One node process, every frame set: closed loop (and open loop with --rate)."""
    closed, opened = [], []
    with dds.NodeUnderTest(spec, log_dir / f"{spec.name}.log") as proc:
        t = time.monotonic()
        driver.wait_for_node(proc)
        startup = time.monotonic() - t
        monitor = ProcessMonitor(proc.pid).start()
        try:
            for fs in frame_sets:
                msgs, truth = msgs_by_key[fs.key], truth_by_key[fs.key]
                if not proc.alive():
                    raise RuntimeError(f"node '{spec.name}' died; log {proc.log_path}:\n{proc.log_tail()}")
                driver.warm_up(msgs, 3)
                with tqdm(desc=f"{spec.name} {fs.key} closed loop", unit="frame", leave=False) as bar:
                    r = driver.run_closed(spec.name, msgs, truth, args.duration, monitor, progress=bar)
                d = r.as_dict() | {"key": fs.key}
                d["resources"]["gpu_memory_mib"] = gpu_memory_of(proc.pid)
                closed.append(d)
                if args.rate > 0:
                    with tqdm(desc=f"{spec.name} {fs.key} at {args.rate:g} fps", unit="frame", leave=False) as bar:
                        r = driver.run_open(spec.name, msgs, truth, max(args.duration, 2.0), args.rate, monitor,
                                            progress=bar)
                    opened.append(r.as_dict() | {"key": fs.key})
        finally:
            monitor.stop()
        info = {"startup_s": round(startup, 2), "peak_rss_mib": round(monitor.peak_rss / 2**20, 1),
                "log": str(proc.log_path)}
    return closed, opened, info


def compare(closed: list[dict]) -> list[dict]:
    out = []
    for ours in (r for r in closed if r["node"] == "ours"):
        peer = next((r for r in closed if r["node"] == "peer" and r["key"] == ours["key"]), None)
        if peer is None:
            continue
        out.append({"key": ours["key"], "fps_ours": ours["fps"], "fps_peer": peer["fps"],
                    "fps_ratio": ratio(ours["fps"], peer["fps"]),
                    "latency_p50_ratio": ratio(ours["latency_ms"]["p50"], peer["latency_ms"]["p50"]),
                    "accuracy_ours": ours["score"]["accuracy"], "accuracy_peer": peer["score"]["accuracy"],
                    "accuracy_six_peer": peer["score"]["accuracy_six"]})
    return out


def check_targets(closed: list[dict], comparisons: list[dict]) -> dict:
    """The issue's targets, on 640x480 with one face (reported, never asserted: this is a benchmark)."""
    ours = next((r for r in closed if r["node"] == "ours" and r["key"] == "640x480/1f"), None)
    comp = next((c for c in comparisons if c["key"] == "640x480/1f"), None)
    out: dict[str, Any] = {}
    if ours:
        out["fps_640x480_1face_ge_30"] = {"value": ours["fps"], "met": ours["fps"] >= 30}
    if comp:
        out["fps_ratio_ge_3"] = {"value": comp["fps_ratio"], "met": (comp["fps_ratio"] or 0) >= 3}
        acc_ok = (comp["accuracy_ours"] or 0) >= max(comp["accuracy_peer"] or 0, comp["accuracy_six_peer"] or 0)
        out["accuracy_ge_peer"] = {"value": [comp["accuracy_ours"], comp["accuracy_peer"], comp["accuracy_six_peer"]],
                                   "met": acc_ok}
    return out


def run_meta(args, argv, started: dt.datetime, transport: str) -> dict[str, Any]:
    """Where, when and how the figures were measured (bench.json's "meta")."""
    command = " ".join(["python -m benchmarks.bench"] + (argv if argv is not None else sys.argv[1:]))
    return {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
            "gpu": gpu_description(args.device), "command": command,
            "transport": transport, "ros_domain_id": os.environ.get("ROS_DOMAIN_ID"),
            "load_average_at_start": list(os.getloadavg()), "torch": torch.__version__,
            "opencv": cv2.__version__, "frames_per_set": args.frames, "duration_s": args.duration,
            "device": args.device, "node_params": node_overrides(args), "heatmaps": args.heatmaps,
            "hold": args.hold, "motion_px_per_frame": args.motion, "noise_std": args.noise}


def build_streams(args, frame_sets) -> tuple[dict, dict, dict]:
    """Per frame set: the still frames as messages (stages), and the DDS stream with its truth: each scene
    `hold` frames in a row, panning with sensor noise (frames.held_stream)."""
    msgs_by_key = {fs.key: dds.make_image_messages([s.frame for s in fs.scenes]) for fs in frame_sets}
    stream_by_key, truth_by_key = {}, {}
    for fs in frame_sets:
        frames, truth_by_key[fs.key] = held_stream(fs, args.hold, args.motion, args.noise, args.seed)
        stream_by_key[fs.key] = dds.make_image_messages(frames)
    return msgs_by_key, stream_by_key, truth_by_key


def run_dds(args, frame_sets, stream_by_key, truth_by_key, data: dict[str, Any]) -> None:
    """Our node, then the peer (never two nodes competing for the cores), over DDS; fills data["dds"] and the
    comparison and targets, and prints their tables."""
    specs = [our_node_spec(args)] + ([] if args.no_peer else [peer_node_spec()])
    driver = dds.Driver(heatmap_topic="/emotion/heatmap" if args.heatmaps else None)
    try:
        for spec in specs:
            print(f"bench: DDS runs with the {spec.name} node", flush=True)
            closed, opened, info = run_node(args, spec, frame_sets, stream_by_key, truth_by_key, driver,
                                            args.output / "logs")
            data["dds"]["closed"] += closed
            data["dds"]["open"] += opened
            data["dds"]["nodes"][spec.name] = info
    finally:
        driver.close()
    data["comparison"] = compare(data["dds"]["closed"])
    data["targets"] = check_targets(data["dds"]["closed"], data["comparison"])
    print(report.dds_table(data["dds"]["closed"], data["comparison"]), flush=True)
    if data["dds"]["open"]:
        print(report.open_table(data["dds"]["open"]), flush=True)
    for name, target in data["targets"].items():
        print(f"target {name}: {target['value']} -> {'met' if target['met'] else 'NOT met'}")


def bench_faces(args) -> list:
    """The faces the accuracy column is scored on: FER+ Test for the shipped 8-class default (CK+ labels have
    no neutral face and CK+ is not the default's domain), CK+ when --ckplus names it or FER+ is absent."""
    from emotion_recognition_ros.media.scenes import DEFAULT_CKPLUS, DEFAULT_FERPLUS_TEST, load_faces, load_ferplus_faces

    if args.ckplus is None and DEFAULT_FERPLUS_TEST.is_dir():
        return load_ferplus_faces(limit=3000)
    return load_faces(args.ckplus or DEFAULT_CKPLUS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transport = dds.ros_environment(args.transport)
    # The bench process itself stays on one core's worth of threads; the node under test gets the rest.
    set_threads(1)
    started = dt.datetime.now(dt.timezone.utc)
    out_dir: Path = args.output
    out_dir.mkdir(parents=True, exist_ok=True)

    print(f"bench: building frames {args.sizes} x faces {args.faces}, {args.frames} per set", flush=True)
    frame_sets = build_frame_sets(args.sizes, args.faces, args.frames, seed=args.seed, faces=bench_faces(args))
    msgs_by_key, stream_by_key, truth_by_key = build_streams(args, frame_sets)
    data: dict[str, Any] = {"meta": run_meta(args, argv, started, transport), "stages": [],
                            "dds": {"closed": [], "open": [], "nodes": {}}, "comparison": [], "targets": {}}
    if not args.no_stages:
        data["stages"] = run_stages(args, frame_sets, msgs_by_key)
        print(report.stage_table(data["stages"]), flush=True)
    if not args.no_dds:
        run_dds(args, frame_sets, stream_by_key, truth_by_key, data)

    data["meta"]["load_average_at_end"] = list(os.getloadavg())
    data["meta"]["wall_s"] = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)
    report.write_json(out_dir / "bench.json", data)
    png = report.plot_bench(out_dir / "bench.png", data)
    print(f"bench: wrote {out_dir / 'bench.json'}" + (f" and {png}" if png else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
