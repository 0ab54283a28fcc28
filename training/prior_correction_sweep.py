"""Sweep the node's `prior_correction` on labelled faces: accuracy, balanced recall, macro-F1 and ECE per setting.

    python -m training.prior_correction_sweep --data ../shared/data/ferplus/FER2013Valid --json op.json --png op.png
    python -m training.prior_correction_sweep --data ../shared/data/ferplus/FER2013Test --prior-corrections 0 0.5

Choose the default on validation data (FER+ Valid) by a rule fixed before looking: the highest balanced recall
(mean of the per-class recalls) among the settings that lose at most `--max-accuracy-cost` (1 point) of plain
accuracy against no correction; a robot mostly meets neutral faces, so neutral recall may not collapse. The probabilities are the node's
(core/prior_correction.py on top of the model's temperature), computed once and re-weighted per setting.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.model_io import ModelLoadError, load_model
from emotion_recognition_ros.core.prior_correction import adjust_log_probs
from emotion_recognition_ros.plots import new_figure, save_figure

from .cli import set_threads
from .data import DatasetError, load_dataset
from .inference import predict_proba
from .metrics import score
from .reports import write_json
from .temperature import reliability

GRID = tuple(round(0.1 * i, 1) for i in range(11))


def balanced_recall(result: dict) -> float:
    recalls = [row["recall"] for row in result["per_class"].values() if row["support"]]
    return float(np.mean(recalls)) if recalls else 0.0


def sweep(log_probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], class_prior: Sequence[float],
          prior_corrections: Sequence[float]) -> list[dict]:
    """One row per setting: accuracy, balanced recall, macro-F1, ECE, per-class recall."""
    rows = []
    for setting in prior_corrections:
        probs = adjust_log_probs(log_probs, class_prior, setting)
        result = score(labels, probs.argmax(1), class_names)
        rows.append({"prior_correction": float(setting), "accuracy": result["accuracy"],
                     "balanced_recall": balanced_recall(result), "macro_f1": result["macro_f1"],
                     "ece": reliability(probs, labels)["ece"], "n": result["n"],
                     "recall": {k: v["recall"] for k, v in result["per_class"].items()}})
    return rows


def choose(rows: Sequence[dict], max_accuracy_cost: float) -> dict:
    """The rule above; rows[0] must be the uncorrected setting (0)."""
    allowed = [r for r in rows if rows[0]["accuracy"] - r["accuracy"] <= max_accuracy_cost + 1e-12]
    return max(allowed, key=lambda r: r["balanced_recall"])


def plot_sweep(rows: Sequence[dict], path: Path, title: str) -> Path:
    settings = [r["prior_correction"] for r in rows]
    fig, ax = new_figure(figsize=(6.4, 4.2))
    for key, label in (("accuracy", "accuracy"), ("balanced_recall", "balanced recall"),
                       ("macro_f1", "macro-F1"), ("ece", "ECE")):
        ax.plot(settings, [r[key] for r in rows], marker="o", label=label)
    ax.set(xlabel="prior_correction (0 = trained prior, 1 = class-balanced)", ylabel="score", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.prior_correction_sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="labelled faces (FER+ split folder, folder tree, .csv)")
    parser.add_argument("--model", default=None, help="shipped model by name or a path (default: default)")
    parser.add_argument("--prior-corrections", nargs="+", type=float, default=list(GRID), help="settings to score")
    parser.add_argument("--strengths", nargs="+", type=float, default=None, help="deprecated: --prior-corrections")
    parser.add_argument("--max-accuracy-cost", type=float, default=0.01,
                        help="most plain accuracy (fraction) the chosen setting may lose against 0 (no correction)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--png", type=Path, default=None, help="plot the sweep here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.strengths is not None:
        print("--strengths is deprecated, use --prior-corrections (the same settings)", file=sys.stderr)
        args.prior_corrections = args.strengths
    set_threads(args.threads)
    try:
        model, meta = load_model(args.model, "cpu")
        if meta.class_prior is None:
            raise ModelLoadError(f"model {meta.model_id} has no class_prior in its JSON: nothing to correct")
        data = load_dataset(args.data, meta.class_names)
    except (ModelLoadError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log_probs = np.log(np.clip(predict_proba(model, meta, data.images, "cpu"), 1e-12, None))
    settings = [0.0] + [s for s in args.prior_corrections if s != 0.0]
    rows = sweep(log_probs, data.labels, meta.class_names, meta.class_prior, settings)
    best = choose(rows, args.max_accuracy_cost)
    print(f"{meta.model_id} on {args.data} (n = {rows[0]['n']}):")
    print("prior_correction  accuracy  balanced_recall  macro_f1  ECE    " + " ".join(meta.class_names))
    for r in rows:
        mark = f"  <- chosen (accuracy cost <= {args.max_accuracy_cost:.3f})" if r is best else ""
        recalls = " ".join(f"{r['recall'][c]:.2f}" for c in meta.class_names)
        print(f"{r['prior_correction']:16.2f}  {r['accuracy']:.4f}    {r['balanced_recall']:.4f}           "
              f"{r['macro_f1']:.4f}    {r['ece']:.4f} {recalls}{mark}")
    if args.json:
        write_json(args.json, {"model_id": meta.model_id, "data": args.data, "rows": rows,
                               "max_accuracy_cost": args.max_accuracy_cost, "chosen": best["prior_correction"]})
    if args.png:
        plot_sweep(rows, args.png, f"{meta.model_id} on {Path(args.data).name} (n = {rows[0]['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
