"""`python -m benchmarks.soak`: N minutes at a camera rate through our node over DDS.

Reports processed and dropped frames, latency over time and the node's RSS every `--every` seconds,
checks that no answer carries a stale stamp (one not newer than the previous answer's, or of a frame never
sent), and plots latency and RSS over time (bench_output/soak.png; data in bench_output/soak.json).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np

from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.plots import new_figure, save_figure

from . import dds, report
from .bench import DEFAULT_OUTPUT, machine_description, node_overrides, our_node_spec
from .frames import build_frame_sets, held_stream
from .stats import ProcessMonitor, fit_slope, summarize_ms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second offered (default 30)")
    p.add_argument("--size", default="640x480", help="frame size (default 640x480)")
    p.add_argument("--faces", type=int, default=1, help="faces per frame (default 1)")
    p.add_argument("--frames", type=int, default=24, help="distinct scenes, cycled (default 24)")
    p.add_argument("--hold", type=int, default=5, help="frames each scene is shown in a row (default 5)")
    p.add_argument("--motion", type=float, default=4.0, help="camera pan, pixels a frame (as benchmarks.bench)")
    p.add_argument("--noise", type=float, default=2.0, help="sensor noise std, grey levels (as benchmarks.bench)")
    p.add_argument("--every", type=float, default=30.0, help="report interval, seconds (default 30)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE")
    p.add_argument("--transport", default="shm", help="as for benchmarks.bench")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.every <= 0 or args.frames < 1 or args.hold < 1:
        p.error("--minutes, --rate, --every must be > 0; --frames, --hold >= 1")
    return args


def windows(timeline: list[tuple[float, float]], sent_times: list[float], samples, every: float,
            duration: float) -> list[dict]:
    """Per reporting window: frames sent/answered, latency p50/p95, RSS at the window's end."""
    out = []
    t = 0.0
    sent = np.asarray(sent_times)
    while t < duration - 1e-6:
        end = min(t + every, duration)
        lat = [ms / 1000.0 for ts, ms in timeline if t <= ts < end]
        n_sent = int(((sent >= t) & (sent < end)).sum())
        rss = [s.rss for s in samples if s.t <= end + 0.5]
        out.append({"t_end_s": round(end, 1), "sent": n_sent, "answered": len(lat),
                    "dropped": n_sent - len(lat), "latency_ms": summarize_ms(lat),
                    "rss_mib": round(rss[-1] / 2**20, 1) if rss else None})
        t = end
    return out


def plot(path: Path, timeline, samples, t_offset: float, meta: dict) -> Path:
    fig, (a, b) = new_figure(2, 1, figsize=(10, 6), sharex=True)
    if timeline:
        ts = np.array([t for t, _ in timeline]) / 60.0
        ms = np.array([m for _, m in timeline])
        a.plot(ts, ms, ".", ms=1.5, alpha=0.35, label="each answered frame")
        k = max(1, len(ms) // 200)
        if len(ms) > k:
            order = np.argsort(ts)
            roll = np.array([np.median(ms[order][max(0, i - 50):i + 50]) for i in range(0, len(ms), k)])
            a.plot(ts[order][::k], roll, "-", lw=1.5, label="rolling median")
        a.set_ylim(0, max(50.0, float(np.percentile(ms, 99.5)) * 1.1))
    a.set_ylabel("latency, stamp -> answer (ms)")
    a.legend(fontsize=8, loc="upper right")
    a.set_title(f"Soak: {meta['rate']:g} fps {meta['size']} {meta['faces']} face(s) over DDS | {meta['date']}", fontsize=9)
    st = [(s.t - t_offset) / 60.0 for s in samples]
    b.plot(st, [s.rss / 2**20 for s in samples], "-")
    b.set_ylabel("node RSS (MiB)")
    b.set_xlabel("minutes")
    return save_figure(fig, path)


def progress_printer(args, driver: dds.Driver, monitor: ProcessMonitor):
    """A progress line every --every seconds, from what has arrived so far (Driver.run_open's on_tick)."""
    last_report = [0.0]

    def tick(t: float) -> None:
        if t - last_report[0] < args.every:
            return
        last_report[0] = t
        recent = [(a.recv_ns - a.stamp_ns) / 1e6 for a in driver.answers[-int(args.rate * args.every):]]
        s = monitor.samples[-1] if monitor.samples else None
        print(f"soak: {t / 60:5.1f} min  answered {len(driver.answers)}  latency p50 "
              f"{np.percentile(recent, 50) if recent else float('nan'):.1f} ms  RSS "
              f"{s.rss / 2**20 if s else float('nan'):.1f} MiB", flush=True)

    return tick


def run_soak(args, spec: dds.NodeSpec, stream, truth) -> tuple[dds.RunResult, ProcessMonitor, float, bool]:
    """The node under test, fed at --rate for --minutes; (result, monitor, monitor time at start, node alive)."""
    driver = dds.Driver()
    try:
        with dds.NodeUnderTest(spec, args.output / "logs" / "soak_node.log") as proc:
            driver.wait_for_node(proc)
            driver.warm_up(stream, 5)
            monitor = ProcessMonitor(proc.pid, interval=1.0).start()
            t_offset = monitor.now()
            result = driver.run_open("ours", stream, truth, args.minutes * 60.0, args.rate, monitor,
                                     on_tick=progress_printer(args, driver, monitor))
            monitor.stop()
            return result, monitor, t_offset, proc.alive()
    finally:
        driver.close()


def summarize_soak(args, result: dds.RunResult, samples: list, t_offset: float, alive: bool) -> tuple[dict, list]:
    """soak.json's summary (RSS first/last and its slope over the second half) and its per-window rows."""
    sent_times = [i / args.rate for i in range(result.sent)]
    win = windows(result.timeline, sent_times, [type(s)(s.t - t_offset, s.cpu_s, s.rss) for s in samples],
                  args.every, result.duration_s)
    half = [s for s in samples if s.t - t_offset >= result.duration_s / 2]
    slope = fit_slope([(s.t - t_offset) / 60.0 for s in half], [s.rss / 2**20 for s in half])
    summary = result.as_dict() | {
        "dropped": result.sent - result.answered, "node_alive_at_end": alive,
        "rss_first_mib": round(samples[0].rss / 2**20, 1) if samples else None,
        "rss_last_mib": round(samples[-1].rss / 2**20, 1) if samples else None,
        "rss_slope_second_half_mib_per_min": round(slope, 3) if slope is not None else None}
    return summary, win


def print_soak(win: list, s: dict) -> None:
    print(f"{'t (s)':>7}{'sent':>6}{'answered':>9}{'dropped':>8}{'lat p50':>9}{'lat p95':>9}{'RSS MiB':>9}")
    for w in win:
        print(f"{w['t_end_s']:>7}{w['sent']:>6}{w['answered']:>9}{w['dropped']:>8}{str(w['latency_ms']['p50']):>9}"
              f"{str(w['latency_ms']['p95']):>9}{str(w['rss_mib']):>9}")
    print(f"soak: sent {s['sent']}, answered {s['answered']} ({s['fps']:.1f} fps), dropped {s['dropped']}, "
          f"stale stamps {s['stale']}, latency p50 {s['latency_ms']['p50']} ms p95 {s['latency_ms']['p95']} ms, "
          f"RSS {s['rss_first_mib']} -> {s['rss_last_mib']} MiB (second-half slope "
          f"{s['rss_slope_second_half_mib_per_min']} MiB/min), accuracy {s['score']['accuracy']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transport = dds.ros_environment(args.transport)
    set_threads(1)
    started = dt.datetime.now(dt.timezone.utc)
    fs = build_frame_sets([args.size], [args.faces], args.frames)[0]
    frames, truth = held_stream(fs, args.hold, args.motion, args.noise)
    bench_args = argparse.Namespace(device=args.device, threads=args.threads, node_param=args.node_param)
    print(f"soak: {args.minutes:g} min at {args.rate:g} fps, {fs.key}, transport {transport}", flush=True)
    result, monitor, t_offset, alive = run_soak(args, our_node_spec(bench_args), dds.make_image_messages(frames),
                                                truth)
    samples = [s for s in monitor.samples if s.t >= t_offset]
    summary, win = summarize_soak(args, result, samples, t_offset, alive)
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
            "command": " ".join(["python -m benchmarks.soak"] + (argv if argv is not None else sys.argv[1:])),
            "transport": transport, "rate": args.rate, "size": args.size, "faces": args.faces,
            "hold": args.hold, "motion_px_per_frame": args.motion, "noise_std": args.noise,
            "node_params": node_overrides(bench_args), "load_average_at_end": list(os.getloadavg())}
    report.write_json(args.output / "soak.json", {"meta": meta, "summary": summary, "windows": win})
    png = plot(args.output / "soak.png", result.timeline, samples, t_offset, meta)
    print_soak(win, summary)
    print(f"soak: wrote {args.output / 'soak.json'} and {png}", flush=True)
    return 0 if summary["stale"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
