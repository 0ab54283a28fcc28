"""DDS start/stop stress: does every start of the demo's processes connect, and does every stop return?

Each *start* runs in a child process of its own (so that each can use its own Fast DDS transports and a hang
cannot stop the harness) and does what `make demo` does, with every wait bounded:
- `--mode processes`: the emotion node, then the recorder (bag_recorder), then the camera (image_source, 20
  frames, waiting for 2 subscribers on image_raw and 1 on camera_info, as the demo asks), each in its own
  process, with a watcher participant in the trial process itself (as the demo has);
- `--mode launch`: `ros2 launch emotion_recognition_ros demo.launch.py record:=true max_frames:=20`.

A start *stalls* when some endpoint never matched within its bound; the trial names which (the camera never
finished because its subscribers never matched, the recorder's bag has no /image_raw, the node answered nothing,
...). Stops are timed too: a process that needs SIGKILL, or logs that its DDS teardown overran, is a *hang*.

Configurations (`--configs`, round-robin so that load changes hit them alike):
- `large_data`: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (shared memory + TCP for data, UDP discovery);
- `shm_udp`: FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_data.xml (16 MiB shared memory + UDP, no TCP);
- `default`: FASTDDS_BUILTIN_TRANSPORTS=DEFAULT (Fast DDS's own: 512 KiB shared memory + UDP, no TCP): tells
  TCP from everything else LARGE_DATA changes.

    scripts/run python -m benchmarks.dds_stress --starts 60 --configs large_data,shm_udp,default
    scripts/run python -m benchmarks.dds_stress --mode launch --starts 20 --configs shm_udp
    scripts/run python -m benchmarks.dds_stress --mode loss --starts 1     # frames received of 300 at 30 fps

Results: one JSON line per start in benchmarks/results/dds_stress_<mode>_<UTC time>.jsonl, and a summary.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PROFILE = REPO / "config" / "fastdds_large_data.xml"
CONFIGS = {
    "large_data": {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
    "shm_udp": {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)},
    "default": {"FASTDDS_BUILTIN_TRANSPORTS": "DEFAULT"},
}
FRAMES = 20
LOSS_FRAMES = 300
LOSS_SIZES = ("640x480", "1280x720")
NODE_START_S = 90.0  # model load on a busy 2-core machine
MATCH_S = 30.0  # every other wait: far longer than a healthy start needs (2-3 s)
DOMAIN = [str(150 + os.getpid() % 50)]  # --domain: two harnesses at once never share one
TRIAL_LIMIT_S = 240.0  # the whole trial, teardown included; past it the harness kills the trial's group


def transport_env(config: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")}
    env.update(CONFIGS[config])
    return env


def shm_files() -> int:
    return sum(1 for p in Path("/dev/shm").glob("fastdds_*")) if Path("/dev/shm").is_dir() else -1


# ---------------------------------------------------------------------------------------------------------------
# One trial, in its own process (`--trial`): prints one JSON line.

def _closed_counts(log: str) -> dict[str, int] | None:
    """The recorder's final counts ('closed PATH: /image_raw 20, /camera_info 20, ...'), None if it never closed."""
    found = re.findall(r"closed \S+: (.*)", log)
    if not found:
        return None
    if found[-1].strip() == "nothing":
        return {}
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(/\S+) (\d+)", found[-1])}


# What a stop that did not return by itself leaves in its log: ros/spin.py's Python deadlines, and faulthandler's
# C watchdog (the one that fires when DDS blocks holding the GIL), which prints "Timeout (0:00:05)!" and _exit(1)s.
OVERRAN_IN_LOG = re.compile(r"teardown still running|garbage collection still running|still finishing .* after the "
                            r"signal|^Timeout \(\d+:\d\d:\d\d(\.\d+)?\)!", re.MULTILINE)


def _stop(process, name: str, result: dict) -> None:
    t0 = time.monotonic()
    last = None  # the signal that ended it: past SIGINT is a stop that did not return by itself
    if process.alive():
        for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            last = sig
            try:
                process.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    process.stop()
    log = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
    result["stops"][name] = {"s": round(time.monotonic() - t0, 2), "code": process.proc.returncode,
                             "killed": last not in (None, signal.SIGINT),
                             "teardown_overran": bool(OVERRAN_IN_LOG.search(log))}


@contextlib.contextmanager
def counting_reader(name: str, msg_type, topic: str):
    """(node, executor, count) of a node in its own rclpy context counting `topic`'s messages with sensor-data QoS
    (as the emotion node subscribes); destroyed explicitly and in order at the end, never by the garbage
    collector (issue 28)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data

    count = [0]
    context = Context()
    rclpy.init(context=context, args=[])
    node = rclpy.create_node(name, context=context)
    sub = node.create_subscription(msg_type, topic, lambda _m: count.__setitem__(0, count[0] + 1),
                                   qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor, count
    finally:
        executor.remove_node(node)
        node.destroy_subscription(sub)
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def trial_processes(out: Path) -> dict:
    from emotion_msgs.msg import EmotionArray

    with counting_reader("stress_watcher", EmotionArray, "/emotion") as (watcher, executor, answers):
        return _trial_processes(out, watcher, executor, answers)


def _trial_processes(out: Path, watcher, executor, answers: list[int]) -> dict:
    from emotion_recognition_ros.ros.spin import spin_until
    from emotion_recognition_ros.tools.processes import NodeProcess

    result: dict = {"missing": [], "t": {}, "stops": {}}

    def wait(predicate, timeout: float) -> bool:
        return spin_until(executor, predicate, timeout)

    def others(topic: str) -> int:
        return sum(i.node_name != "stress_watcher" for i in watcher.get_subscriptions_info_by_topic(topic))

    py = sys.executable
    node = NodeProcess([py, "-m", "emotion_recognition_ros.ros.emotion_node", "--ros-args", "-p", "device:=cpu"],
                       out / "emotion_node.log")
    recorder = NodeProcess([py, "-m", "emotion_recognition_ros.tools.bag_recorder", "-o", str(out / "bag"),
                            "/image_raw", "/camera_info", "/emotion", "/diagnostics"], out / "recorder.log")
    camera = NodeProcess([py, "-m", "emotion_recognition_ros.ros.image_source_node", "--ros-args",
                          "-p", f"max_frames:={FRAMES}", "-p", "rate:=20.0", "-p", "width:=640",
                          "-p", "wait_for_subscribers:=2", "-p", "wait_for_info_subscribers:=1"],
                         out / "image_source.log")
    t0 = time.monotonic()
    try:
        node.start()
        if not wait(lambda: watcher.count_publishers("/emotion") > 0 or node.failed(), NODE_START_S) \
                or node.failed():
            result["missing"].append("watcher: the node's /emotion publisher never appeared")
            return result
        result["t"]["node"] = round(time.monotonic() - t0, 2)
        recorder.start()
        if not wait(lambda: others("/emotion") and others("/diagnostics"), MATCH_S):
            result["missing"].append("watcher: the recorder's /emotion, /diagnostics subscriptions never appeared")
        result["t"]["recorder"] = round(time.monotonic() - t0, 2)
        camera.start()
        if not wait(lambda: not camera.alive(), MATCH_S):
            waiting = [ln for ln in camera.log_tail(50).splitlines() if "waiting" in ln or "missing" in ln]
            result["missing"].append("camera: never finished its frames: " + (waiting[-1].strip() if waiting
                                                                               else "no waiting line"))
        result["t"]["camera"] = round(time.monotonic() - t0, 2)
        if not wait(lambda: answers[0] > 0, 10.0):
            result["missing"].append("node: no /emotion answer reached the watcher (node never got /image_raw?)")
        result["answers"] = answers[0]
    finally:
        for name, process in (("image_source", camera), ("recorder", recorder), ("emotion_node", node)):
            if process.proc is not None:
                _stop(process, name, result)
        counts = _closed_counts(recorder.log_path.read_text(errors="replace")) if recorder.log_path.exists() \
            else None
        result["bag"] = counts
        if recorder.proc is not None:
            if counts is None:
                result["missing"].append("recorder: never closed its bag")
            else:
                result["missing"] += [f"recorder: bag has no {t}" for t in
                                      ("/image_raw", "/camera_info", "/emotion", "/diagnostics") if not counts.get(t)]
    return result


def trial_launch(out: Path) -> dict:
    from emotion_recognition_ros.tools.processes import NodeProcess

    result: dict = {"missing": [], "t": {}, "stops": {}}
    launch = NodeProcess(["ros2", "launch", "emotion_recognition_ros", "demo.launch.py", "record:=true",
                          f"bag:={out / 'bag'}", f"max_frames:={FRAMES}", "rate:=20.0", "device:=cpu"],
                         out / "launch.log")
    t0 = time.monotonic()

    def log() -> str:
        return launch.log_path.read_text(errors="replace") if launch.log_path.exists() else ""

    launch.start()
    try:
        deadline = time.monotonic() + NODE_START_S + MATCH_S
        while time.monotonic() < deadline and "finished after" not in log() and launch.alive():
            time.sleep(0.2)
        if "finished after" not in log():
            waiting = [ln for ln in log().splitlines() if "waiting for" in ln or "missing" in ln]
            result["missing"].append("camera: never finished its frames: " + (waiting[-1].strip() if waiting
                                                                               else "no waiting line"))
        result["t"]["camera"] = round(time.monotonic() - t0, 2)
        time.sleep(2.0)  # the node's last answers reach the recorder
    finally:
        _stop(launch, "launch", result)
    counts = _closed_counts(log())
    result["bag"] = counts
    if counts is None:
        result["missing"].append("recorder: never closed its bag (ros2 bag record?)")
    else:
        result["missing"] += [f"recorder: bag has no {t}" for t in
                              ("/image_raw", "/camera_info", "/emotion", "/diagnostics") if not counts.get(t)]
    result["launch_escalated"] = [ln.strip() for ln in log().splitlines() if "escalating to SIG" in ln]
    return result


def trial_loss(out: Path, size: str) -> dict:
    """The camera (reliable, depth 5, as shipped) offers LOSS_FRAMES frames at 30 fps to a best-effort reader
    (sensor-data QoS, as the node subscribes) in this process, which deserializes each; how many arrive."""
    from sensor_msgs.msg import Image

    with counting_reader("loss_reader", Image, "/image_raw") as (_reader, executor, received):
        return _trial_loss(out, size, executor, received)


def _trial_loss(out: Path, size: str, executor, received: list[int]) -> dict:
    from emotion_recognition_ros.tools.processes import NodeProcess

    width, height = (int(v) for v in size.split("x"))
    camera = NodeProcess([sys.executable, "-m", "emotion_recognition_ros.ros.image_source_node", "--ros-args",
                          "-p", f"max_frames:={LOSS_FRAMES}", "-p", "rate:=30.0", "-p", f"width:={width}",
                          "-p", f"height:={height}", "-p", "wait_for_subscribers:=1"], out / "image_source.log")
    result: dict = {"size": size, "offered": LOSS_FRAMES, "missing": [], "stops": {}}
    try:
        camera.start()
        deadline = time.monotonic() + MATCH_S + LOSS_FRAMES / 30.0 * 3
        while camera.alive() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        if camera.alive():
            result["missing"].append("camera: never finished its frames")
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.05)
        published = re.findall(r"finished after (\d+) frame", camera.log_tail(20))
        result["published"] = int(published[-1]) if published else None
        result["received"] = received[0]
    finally:
        _stop(camera, "image_source", result)
    return result


# ---------------------------------------------------------------------------------------------------------------
# The harness.

def run_trial(mode: str, config: str, index: int, keep: Path | None, size: str = "") -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"dds_stress_{config}_"))
    env = transport_env(config)
    env["ROS_DOMAIN_ID"] = DOMAIN[0]
    env["OMP_NUM_THREADS"] = "1"  # other people share this machine's two cores
    started = time.monotonic()
    record = {"mode": mode, "config": config, "start": index, "utc": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), "shm_files_before": shm_files(), "load1": round(os.getloadavg()[0], 2)}
    if size:
        record["size"] = size
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.dds_stress", "--trial", mode, "--trial-out", str(out),
                             "--trial-size", size or "640x480"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TRIAL_LIMIT_S)
        line = next((ln for ln in reversed(output.splitlines()) if ln.startswith("{")), None)
        record.update(json.loads(line) if line else {"missing": ["trial: no result: " + output[-300:]]})
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        record.update({"missing": [f"trial: still running after {TRIAL_LIMIT_S:g} s (killed)"], "trial_hung": True})
    record["s"] = round(time.monotonic() - started, 1)
    record["stalled"] = bool(record["missing"])
    record["hung"] = bool(record.get("trial_hung")) or any(
        s.get("killed") or s.get("teardown_overran") for s in record.get("stops", {}).values())
    if keep is not None and (record["stalled"] or record["hung"]):
        dest = keep / f"{config}_{index}"
        shutil.copytree(out, dest, ignore=shutil.ignore_patterns("bag"), dirs_exist_ok=True)
        record["logs"] = str(dest)
    shutil.rmtree(out, ignore_errors=True)
    return record


def summarize(records: list[dict]) -> str:
    lines = []
    for config in dict.fromkeys(r["config"] for r in records):
        mine = [r for r in records if r["config"] == config]
        stalled = [r for r in mine if r["stalled"]]
        hung = [r for r in mine if r["hung"]]
        lines.append(f"{records[0]['mode']} {config}: {len(stalled)} of {len(mine)} starts stalled, "
                     f"{len(hung)} stops hung")
        for r in mine:
            if "received" in r:
                lines.append(f"  {r['size']}: received {r['received']} of {r.get('published')} published "
                             f"({r['offered']} offered at 30 fps)")
        for r in stalled:
            lines.append(f"  start {r['start']}: {'; '.join(r['missing'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("processes", "launch", "loss"), default="processes",
                   help="loss: frames received of 300 at 30 fps, 640x480 and 1280x720, per configuration")
    p.add_argument("--configs", default="large_data,shm_udp,default")
    p.add_argument("--starts", type=int, default=60, help="starts per configuration")
    p.add_argument("--minutes", type=float, default=0.0, help="stop starting new trials after this long (0: no limit)")
    p.add_argument("--out", type=Path, default=None, help="JSONL file (default benchmarks/results/...)")
    p.add_argument("--domain", default=DOMAIN[0], help="ROS_DOMAIN_ID of the trials (default: 150 + pid %% 50)")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy the logs of stalled/hung starts here")
    p.add_argument("--trial", choices=("processes", "launch", "loss"), help=argparse.SUPPRESS)
    p.add_argument("--trial-size", default="640x480", help=argparse.SUPPRESS)
    p.add_argument("--trial-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trial:
        if args.trial == "loss":
            result = trial_loss(args.trial_out, args.trial_size)
        else:
            result = (trial_processes if args.trial == "processes" else trial_launch)(args.trial_out)
        print(json.dumps(result), flush=True)
        return 0
    DOMAIN[0] = args.domain
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / f"dds_stress_{args.mode}_{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.keep_logs:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    sizes = LOSS_SIZES if args.mode == "loss" else ("",)
    total = args.starts * len(configs) * len(sizes)
    began = time.monotonic()
    print(f"dds_stress: {args.mode}, {args.starts} starts x {configs} -> {out}", flush=True)
    try:
        for index in range(args.starts):
            for config, size in ((c, z) for z in sizes for c in configs):
                if args.minutes and time.monotonic() - began > args.minutes * 60:
                    raise TimeoutError
                record = run_trial(args.mode, config, index, args.keep_logs, size)
                records.append(record)
                with out.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                done = len(records)
                eta = (time.monotonic() - began) / done * (total - done)
                flag = ("STALL " + "; ".join(record["missing"])) if record["stalled"] else "ok"
                if "received" in record:
                    flag += f" {record['size']} received {record['received']}/{record.get('published')}"
                print(f"[{done}/{total}] {config} #{index} {record['s']:.0f} s {flag}"
                      f"{' HANG' if record['hung'] else ''}  (ETA {eta / 60:.0f} min)", flush=True)
    except (TimeoutError, KeyboardInterrupt):
        print("dds_stress: stopped early", flush=True)
    print(summarize(records) if records else "no starts", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
