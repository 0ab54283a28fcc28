"""`evaluate_bag`: how well and how fast did the node do in a recording?

Reads a rosbag2 (from `ros2 bag record` or `bag_recorder`; sqlite3 or MCAP), pairs each EmotionArray with
its camera frame by header stamp (the node copies the frame's header), and reports the processed-frame rate,
latency (the bag's receive time of the result minus the frame's stamp), the drop rate (frames without a
result), per-face label timelines (PNG), and, given ground truth (see `truth.py`), accuracy and a confusion
matrix (JSON + PNG). Exit status 2 with one line naming the problem for unusable input.
"""
from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core.tracking.tracker import match_boxes
from .bag_io import BagError
from .eval_plots import plot_confusion, plot_timeline
from .recording import (DEFAULT_EMOTION_TOPIC, DEFAULT_IMAGE_TOPIC, EvaluationError, Face, Recording, Result,
                        read_recording)
from .truth import TruthError, TruthRow, load_truth

def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "mean": float(arr.mean()), "max": float(arr.max())}


def timing(rec: Recording) -> dict[str, Any]:
    """Frame and result rates, drop rate and latency, from stamps alone."""
    paired = [r for r in rec.results if r.stamp_ns in rec.frames]
    unpaired = len(rec.results) - len(paired)
    if not paired:
        first, last = min(rec.frames), max(rec.frames)
        raise EvaluationError(
            f"mismatched stamps: none of the {len(rec.results)} results has the header stamp of a frame "
            f"(results {rec.results[0].stamp_ns}..{rec.results[-1].stamp_ns} ns, frames {first}..{last} ns); "
            "was the bag recorded from another camera topic than the node's input?")
    stamps = sorted(rec.frames)
    result_stamps = sorted({r.stamp_ns for r in paired})
    span = (stamps[-1] - stamps[0]) / 1e9
    result_span = (result_stamps[-1] - result_stamps[0]) / 1e9
    latencies = [(r.recv_ns - r.stamp_ns) / 1e6 for r in paired]
    return {
        "frames": len(stamps),
        "results": len(rec.results),
        "paired_results": len(result_stamps),
        "unpaired_results": unpaired,
        "dropped_frames": len(stamps) - len(result_stamps),
        "drop_rate": 1.0 - len(result_stamps) / len(stamps),
        "duration_s": span,
        "input_fps": (len(stamps) - 1) / span if span > 0 else 0.0,
        "processed_fps": (len(result_stamps) - 1) / result_span if result_span > 0 else 0.0,
        "latency_ms": _percentiles(latencies),
    }


def tracks(rec: Recording) -> dict[int, dict[str, Any]]:
    """Per face_id: how many results it appears in, when, and which labels it got."""
    start = min(rec.frames)
    per: dict[int, dict[str, Any]] = {}
    for result in rec.results:
        for face in result.faces:
            track = per.setdefault(face.face_id, {"frames": 0, "labels": Counter(), "first_s": None, "last_s": None})
            t = (result.stamp_ns - start) / 1e9
            track["frames"] += 1
            track["labels"][face.label] += 1
            track["first_s"] = t if track["first_s"] is None else min(track["first_s"], t)
            track["last_s"] = t if track["last_s"] is None else max(track["last_s"], t)
    for track in per.values():
        track["dominant"] = track["labels"].most_common(1)[0][0]
        track["labels"] = dict(track["labels"].most_common())
    return dict(sorted(per.items()))


def resolve_stamps(rows: list[TruthRow], frames: dict[int, int], tolerance_ns: int) -> list[tuple[int, TruthRow]]:
    """Each truth row with the stamp of its frame; rows naming no recorded frame are left out."""
    stamps = sorted(frames)
    resolved = []
    for row in rows:
        if row.stamp_ns is not None:
            if row.stamp_ns in frames:
                resolved.append((row.stamp_ns, row))
            continue
        target = stamps[0] + int(round(row.time_s * 1e9))
        i = bisect.bisect_left(stamps, target)
        near = min((s for s in stamps[max(0, i - 1):i + 1]), key=lambda s: abs(s - target))
        if abs(near - target) <= tolerance_ns:
            resolved.append((near, row))
    return resolved


def accuracy_against_truth(rec: Recording, rows: list[TruthRow], iou_threshold: float = 0.3,
                           tolerance_ns: int | None = None) -> dict[str, Any]:
    """Accuracy and confusion matrix of the results against ground truth, on frames that have a result.

    Boxed truth is matched to the result's faces by IoU (greedy, best first); a frame-level label is
    compared with every face in that frame. Truth faces with no matching detection count as missed.
    """
    resolved = _resolve(rec, rows, tolerance_ns)
    results = {r.stamp_ns: r for r in rec.results}
    pairs, missed, on_dropped = _pair_labels(resolved, results, iou_threshold)
    class_names = next((r.class_names for r in rec.results if r.class_names), [])
    labels, matrix = confusion_by_label(pairs, class_names)
    per_class = {name: {"support": int(matrix[i].sum()),
                        "recall": float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None}
                 for i, name in enumerate(labels) if matrix[i].sum()}
    recalls = [v["recall"] for v in per_class.values() if v["recall"] is not None]
    boxed_total = sum(1 for stamp, row in resolved if row.box and stamp in results)
    return {
        "truth_rows": len(rows),
        "truth_rows_on_recorded_frames": len(resolved),
        "truth_rows_on_dropped_frames": on_dropped,
        "scored_faces": len(pairs),
        "missed_faces": missed,
        "detection_recall": (1.0 - missed / boxed_total) if boxed_total else None,
        "accuracy": int(np.trace(matrix)) / len(pairs) if pairs else None,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "per_class": per_class,
        "labels": labels,
        "confusion": matrix.tolist(),
        "iou_threshold": iou_threshold,
    }


def _resolve(rec: Recording, rows: list[TruthRow], tolerance_ns: int | None) -> list[tuple[int, TruthRow]]:
    """Truth rows on recorded frames (stamp, row); tolerance defaults to half the median frame gap."""
    stamps = sorted(rec.frames)
    if tolerance_ns is None:
        gaps = np.diff(stamps)
        tolerance_ns = int(np.median(gaps) / 2) if len(gaps) else 0
    resolved = resolve_stamps(rows, rec.frames, tolerance_ns)
    if not resolved:
        raise EvaluationError(
            f"mismatched stamps: none of the {len(rows)} ground-truth rows names a recorded frame "
            f"(frames {stamps[0]}..{stamps[-1]} ns; truth {_truth_span(rows)})")
    return resolved


def _pair_labels(resolved: list[tuple[int, TruthRow]], results: dict[int, Result],
                 iou_threshold: float) -> tuple[list[tuple[str, str]], int, int]:
    """(truth, predicted) label pairs, truth faces missed, truth rows on frames without a result."""
    by_stamp: dict[int, list[TruthRow]] = defaultdict(list)
    for stamp, row in resolved:
        by_stamp[stamp].append(row)
    pairs: list[tuple[str, str]] = []
    missed, on_dropped = 0, 0
    for stamp, truth_rows in by_stamp.items():
        result = results.get(stamp)
        if result is None:
            on_dropped += len(truth_rows)
            continue
        pairs += [(row.label, face.label) for row in truth_rows if not row.box for face in result.faces]
        matched, unmatched = _match([row for row in truth_rows if row.box], result.faces, iou_threshold)
        pairs += matched
        missed += unmatched
    return pairs, missed, on_dropped


def confusion_by_label(pairs: list[tuple[str, str]], class_names: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels (the model's classes first, then any others seen) and the count matrix, truth down."""
    labels = list(class_names) + sorted({t for t, _ in pairs} - set(class_names))
    labels += sorted({p for _, p in pairs} - set(labels))
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for truth, predicted in pairs:
        matrix[index[truth], index[predicted]] += 1
    return labels, matrix


def _match(boxed: list[TruthRow], faces: list[Face], threshold: float) -> tuple[list[tuple[str, str]], int]:
    pairs = match_boxes([row.box for row in boxed], [face.box for face in faces], threshold)
    return [(boxed[i].label, faces[j].label) for i, j in pairs], len(boxed) - len(pairs)


def _truth_span(rows: list[TruthRow]) -> str:
    stamps = [r.stamp_ns for r in rows if r.stamp_ns is not None]
    times = [r.time_s for r in rows if r.time_s is not None]
    parts = [f"stamps {min(stamps)}..{max(stamps)} ns"] if stamps else []
    parts += [f"times {min(times):g}..{max(times):g} s"] if times else []
    return ", ".join(parts)


def evaluate(bag: str | Path, *, image_topic: str = DEFAULT_IMAGE_TOPIC, emotion_topic: str = DEFAULT_EMOTION_TOPIC,
             truth: str | Path | None = None, iou_threshold: float = 0.3, out: str | Path | None = None,
             plots: bool = True) -> dict[str, Any]:
    """The whole evaluation; writes report.json (+ timeline.png, confusion.json/.png) under `out` if given."""
    rec = read_recording(bag, image_topic, emotion_topic)
    report: dict[str, Any] = {"bag": str(bag), "image_topic": image_topic, "emotion_topic": emotion_topic,
                              "model_ids": rec.model_ids, **timing(rec)}
    faces = [len(r.faces) for r in rec.results if r.stamp_ns in rec.frames]
    report["faces"] = sum(faces)
    report["faces_per_frame"] = float(np.mean(faces)) if faces else 0.0
    report["tracks"] = {str(k): v for k, v in tracks(rec).items()}
    if truth is not None:
        report["truth"] = str(truth)
        report["accuracy"] = accuracy_against_truth(rec, load_truth(truth), iou_threshold)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        report["outputs"] = {"report": str(out / "report.json")}
        if plots:
            report["outputs"]["timeline"] = str(plot_timeline(rec, out / "timeline.png"))
            if "accuracy" in report:
                report["outputs"]["confusion"] = str(plot_confusion(report["accuracy"], out / "confusion.png"))
        if "accuracy" in report:
            confusion_report = {k: report["accuracy"][k] for k in ("labels", "confusion", "accuracy", "per_class")}
            (out / "confusion.json").write_text(json.dumps(confusion_report, indent=2) + "\n")
            report["outputs"]["confusion_json"] = str(out / "confusion.json")
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_summary(report: dict[str, Any], max_tracks: int = 12) -> str:
    """The report as a few lines for a terminal."""
    lat = report["latency_ms"]
    lines = [
        f"bag: {report['bag']}  (model {', '.join(report['model_ids']) or 'unknown'})",
        f"frames: {report['frames']} on {report['image_topic']} over {report['duration_s']:.1f} s "
        f"({report['input_fps']:.1f} fps); results: {report['paired_results']} "
        f"({report['processed_fps']:.1f} fps processed); dropped: {report['dropped_frames']} "
        f"({100 * report['drop_rate']:.1f}%)",
        f"latency (result received - frame stamp): p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, "
        f"max {lat['max']:.0f} ms",
        f"faces: {report['faces']} in {report['paired_results']} results ({report['faces_per_frame']:.2f} per frame), "
        f"{len(report['tracks'])} tracks",
    ]
    items = sorted(report["tracks"].items(), key=lambda kv: -kv[1]["frames"])
    for face_id, track in items[:max_tracks]:
        labels = ", ".join(f"{name} {count}" for name, count in track["labels"].items())
        lines.append(f"  face {face_id:>3}: {track['frames']:>4} frames, {track['first_s']:6.1f}-"
                     f"{track['last_s']:5.1f} s, mostly {track['dominant']:<8} ({labels})")
    if len(items) > max_tracks:
        lines.append(f"  ... and {len(items) - max_tracks} more tracks (report.json has them all)")
    acc = report.get("accuracy")
    if acc:
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        lines.append(f"accuracy: {fmt(acc['accuracy'])} of {acc['scored_faces']} faces "
                     f"(balanced {fmt(acc['balanced_accuracy'])}); detection recall {fmt(acc['detection_recall'])} "
                     f"({acc['missed_faces']} labelled faces not detected); "
                     f"{acc['truth_rows_on_dropped_frames']} labelled faces on dropped frames")
        lines.append("  per class recall: " + ", ".join(
            f"{name} {fmt(v['recall'])} ({v['support']})" for name, v in acc["per_class"].items()))
    for name, path in report.get("outputs", {}).items():
        lines.append(f"wrote {name}: {path}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate_bag", description=__doc__.split("\n\n")[0].replace("`", ""))
    parser.add_argument("bag", help="rosbag2 folder (sqlite3 or MCAP), or its .db3/.mcap file")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC, help="camera topic the node read")
    parser.add_argument("--emotion-topic", default=DEFAULT_EMOTION_TOPIC, help="the node's EmotionArray topic")
    parser.add_argument("--truth", help="ground-truth CSV or JSON (stamp_ns|time_s[,x,y,w,h],label)")
    parser.add_argument("--iou", type=float, default=0.3, help="IoU that matches a labelled box to a detection")
    parser.add_argument("-o", "--out", help="folder for report.json and PNGs (default: BAG_eval beside the bag)")
    parser.add_argument("--no-plots", action="store_true", help="write JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bag = Path(args.bag)
    folder = bag.parent if bag.suffix in (".mcap", ".db3") else bag
    out = Path(args.out) if args.out else folder.with_name(folder.name + "_eval")
    try:
        report = evaluate(bag, image_topic=args.image_topic, emotion_topic=args.emotion_topic,
                          truth=args.truth, iou_threshold=args.iou, out=out, plots=not args.no_plots)
    except (BagError, EvaluationError, TruthError) as exc:
        print(f"evaluate_bag: {exc}", file=sys.stderr)
        return 2
    print(format_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
