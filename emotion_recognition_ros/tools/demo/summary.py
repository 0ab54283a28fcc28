"""The demo's summary: what the camera offered, what the node answered and why the rest went unanswered, the
evaluation of the bag, and where everything was left."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contact_sheet import make_contact_sheet
from ..evaluate_bag import evaluate, format_summary
from .watcher import Collector


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def drop_causes(report: dict[str, Any], diagnostics: dict[str, str]) -> str:
    """Why frames went unanswered, from the node's own counts (its last /diagnostics) and the bag. DDS reports the
    samples a best-effort reader never got (message-lost events): that is transport loss. A frame the node never
    took from its DDS queue (qos_depth deep) was overwritten by newer ones while its callbacks could not run:
    that, and a frame replaced in its latest-frame slot, is the node being busy."""
    if not diagnostics:
        return "causes unknown (no diagnostics from the node)"
    count = lambda key: int(float(diagnostics.get(key, 0)))  # noqa: E731
    transport = count("frames_lost_dds")
    overwritten = max(0, report["frames"] - count("frames_received") - transport)
    busy = count("frames_dropped") + overwritten
    return (f"{busy} while the node was busy ({count('frames_dropped')} replaced by a newer frame before it got to "
            f"them, {overwritten} overwritten in its DDS queue), {transport} lost in transport (DDS message-lost "
            f"events), {count('frames_rejected')} rejected, {count('frames_failed')} failed")


def summarize_run(args, info: dict[str, Any]) -> str:
    out: Path = args.out
    truth = out / "truth.csv" if info["synthetic"] and (out / "truth.csv").is_file() else None
    report = evaluate(info["bag"], truth=truth, out=out / "eval", image_topic=info["topics"]["camera"],
                      emotion_topic=info["topics"]["emotion"])
    collector: Collector = info["collector"]
    lat = report["latency_ms"]
    answered = report["paired_results"]
    title = (f"{answered} of {info['offered']} frames answered at {report['processed_fps']:.1f} fps "
             f"({info['rate']:g} offered), latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
    entries = collector.sheet_entries()
    sheet = make_contact_sheet(entries, out / "contact_sheet.png", title=title) if entries else None
    lines = [
        f"emotion_recognition_ros demo: {info['source']}, {info['offered']} frames offered at {info['rate']:g} fps; "
        f"the camera published {report['frames']} in {info['wall_s']:.1f} s ({report['input_fps']:.1f} fps)",
        f"node: answered {answered} of {report['frames']} frames, sustained {report['processed_fps']:.1f} fps; "
        f"dropped {report['dropped_frames']} ({100 * report['drop_rate']:.1f}%): "
        + drop_causes(report, collector.diagnostics),
        format_summary(report),
        f"bag: {info['bag']} ({_size_mb(info['bag']):.0f} MB, {args.storage}, by {info['recorder']}); annotated "
        f"frames: {len(collector.saved['annotated'])} in {out / 'annotated'}; heatmaps: "
        f"{len(collector.saved['heatmap'])} in {out / 'heatmap'}",
        f"contact sheet: {sheet}" if sheet else "contact sheet: none (the node published no annotated frames)",
        f"logs: {', '.join(str(out / f'{name}.log') for name in ('emotion_node', 'image_source', 'recorder'))}",
        f"evaluate again: scripts/run evaluate_bag {info['bag']}" + (f" --truth {truth}" if truth else "")
        + (f" --image-topic {info['topics']['camera']} --emotion-topic {info['topics']['emotion']}"
           if args.namespace.strip("/") else ""),
    ]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    return text
