"""Printing the bench's tables and writing its JSON and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from emotion_recognition_ros.plots import new_figure, save_figure

from .stages import BENCH_STAGES


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def stage_table(stages: list[dict]) -> str:
    cols = BENCH_STAGES
    head = f"{'frames':<14}" + "".join(f"{c + ' p50/p95':>22}" for c in cols) + f"{'total p50':>11}{'fps':>8}"
    lines = ["Per-stage latency in-process (ms; total excludes Grad-CAM, which runs off the frame path)", head]
    for s in stages:
        row = f"{s['key']:<14}"
        for c in cols:
            st = s["stages"].get(c)
            row += f"{(_f(st['p50'], 2) + ' / ' + _f(st['p95'], 2)) if st else '-':>22}"
        row += f"{_f(s['total_ms']['p50'], 1):>11}{_f(s['fps'], 1):>8}"
        if s.get("gpu_max_memory_mib") is not None:
            row += f"  gpu {s['gpu_max_memory_mib']} MiB"
        lines.append(row)
    return "\n".join(lines)


def dds_table(runs: list[dict], comparisons: list[dict]) -> str:
    lines = ["End to end over DDS (publisher -> node -> subscriber, closed loop; latency from header stamps)",
             f"{'frames':<14}{'node':<6}{'fps':>7}{'lat p50':>9}{'lat p95':>9}{'cpu':>6}{'rss MiB':>9}"
             f"{'recall':>8}{'acc':>7}{'acc6':>7}{'FP':>5}{'stale':>7}"]
    for r in runs:
        s, res = r["score"], r["resources"]
        lines.append(f"{r['key']:<14}{r['node']:<6}{_f(r['fps']):>7}{_f(r['latency_ms']['p50']):>9}"
                     f"{_f(r['latency_ms']['p95']):>9}{_f(res.get('cpu_cores'), 2):>6}{_f(res.get('rss_max_mib')):>9}"
                     f"{_f(s['recall'], 3):>8}{_f(s['accuracy'], 3):>7}{_f(s['accuracy_six'], 3):>7}"
                     f"{s['false_positives']:>5}{r['stale']:>7}")
    if comparisons:
        lines.append("")
        lines.append(f"{'frames':<14}{'fps ours/peer':>15}{'latency p50 ours/peer':>24}{'acc ours':>10}{'acc peer':>10}"
                     f"{'acc6 peer':>11}")
        for c in comparisons:
            lines.append(f"{c['key']:<14}{_f(c['fps_ratio'], 2):>15}{_f(c['latency_p50_ratio'], 2):>24}"
                         f"{_f(c['accuracy_ours'], 3):>10}{_f(c['accuracy_peer'], 3):>10}{_f(c['accuracy_six_peer'], 3):>11}")
    return "\n".join(lines)


def open_table(runs: list[dict]) -> str:
    lines = ["At camera rate (open loop)",
             f"{'frames':<14}{'node':<6}{'offered':>8}{'answered':>9}{'fps':>7}{'lat p50':>9}{'lat p95':>9}{'stale':>7}"]
    for r in runs:
        lines.append(f"{r['key']:<14}{r['node']:<6}{_f(r['offered_fps']):>8}{r['answered']:>5}/{r['sent']:<4}"
                     f"{_f(r['fps']):>6}{_f(r['latency_ms']['p50']):>9}{_f(r['latency_ms']['p95']):>9}{r['stale']:>7}")
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def plot_bench(path: Path, data: dict) -> Path | None:
    """fps per frame set (ours vs peer) and our per-stage breakdown, side by side."""
    runs = [r for r in data.get("dds", {}).get("closed", [])]
    stages = data.get("stages", [])
    if not runs and not stages:
        return None
    fig, axes = new_figure(1, 3, figsize=(18, 4.8))
    keys = sorted({r["key"] for r in runs}, key=lambda k: [r["key"] for r in runs].index(k))
    ax = axes[0]
    width = 0.38
    for i, node in enumerate(("ours", "peer")):
        fps = [next((r["fps"] for r in runs if r["key"] == k and r["node"] == node), 0.0) for k in keys]
        if any(fps):
            ax.bar(np.arange(len(keys)) + (i - 0.5) * width, fps, width,
                   label={"ours": "emotion_recognition_ros", "peer": "fer-based node"}[node])
    ax.axhline(30, color="gray", ls="--", lw=1, label="30 fps")
    ax.set_xticks(np.arange(len(keys)), keys, rotation=20)
    ax.set_ylabel("answered frames / s (closed loop over DDS)")
    ax.set_title("End-to-end throughput")
    ax.legend(fontsize=8)
    ax = axes[2]
    scored = [k for k in keys if any(r["key"] == k and r["score"]["faces"] for r in runs)]
    for i, node in enumerate(("ours", "peer")):
        acc = [next((r["score"]["accuracy"] or 0.0 for r in runs if r["key"] == k and r["node"] == node), 0.0)
               for k in scored]
        if any(acc):
            ax.bar(np.arange(len(scored)) + (i - 0.5) * width, acc, width,
                   label={"ours": "emotion_recognition_ros", "peer": "fer-based node"}[node])
    ax.set_xticks(np.arange(len(scored)), scored, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy on pasted faces (missed = wrong)")
    ax.set_title("Accuracy, same frames")
    ax.legend(fontsize=8)
    ax = axes[1]
    # Grad-CAM last, on top of the stack: it runs off the frame path, so the bars below it are the frame's time.
    names = tuple(s for s in BENCH_STAGES if s != "explain") + ("explain",)
    bottom = np.zeros(len(stages))
    for name in names:
        vals = np.array([(s["stages"].get(name) or {}).get("p50") or 0.0 for s in stages])
        ax.bar([s["key"] for s in stages], vals, bottom=bottom, label=name,
               hatch="//" if name == "explain" else None)
        bottom += vals
    ax.set_ylabel("ms per frame (p50)")
    ax.set_title("Where the time goes: a frame with a full detection\n(ours, in-process; Grad-CAM off the frame path)")
    ax.tick_params(axis="x", rotation=20)
    ax.legend(fontsize=8)
    fig.suptitle(f"{data['meta']['machine']} | {data['meta']['date']}", fontsize=9)
    return save_figure(fig, path)
