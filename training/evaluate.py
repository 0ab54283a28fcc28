"""Score a saved model on labelled faces, through the node's own preprocessing.

    python -m training.evaluate --data ../shared/data/ferplus/FER2013Test          # FER+ protocol, JSON to stdout
    python -m training.evaluate --data DIR [--model default|ckplus6|PATH] [--classes ...] [--json OUT.json]
        [--confusion-png P] [--reliability-png P]

DIR is a FER+ split folder (label.csv; scored on majority labels over the model's classes, the FER+
protocol: 3,371 faces of FER2013Test for the 8 emotions), a folder tree <class>/<image>, or a FER2013 .csv.
The JSON holds accuracy, macro_f1, n, per_class, confusion (rows = true class), calibration (ECE over 15
confidence bins, with the model's temperature applied) and the rows the protocol dropped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn

from emotion_recognition_ros.core.device import resolve_device
from emotion_recognition_ros.core.model_io import ModelLoadError, ModelMetadata, load_model

from .data import DatasetError, FaceDataset, load_dataset
from .inference import predict_proba
from .metrics import score
from .cli import set_threads
from .temperature import plot_reliability, reliability
from .reports import plot_confusion, write_json


def predict(model: nn.Module, meta: ModelMetadata, images: Sequence[np.ndarray], device: str = "cpu",
            tta_flip: bool = False, batch_size: int = 128) -> np.ndarray:
    """Predicted class index per face crop (any size, gray/BGR uint8), as the node would compute it."""
    probs = predict_proba(model, meta, images, device, batch_size=batch_size, tta_flip=tta_flip)
    return probs.argmax(1)


def evaluate_dataset(model: nn.Module, meta: ModelMetadata, data: FaceDataset, device: str = "cpu",
                     tta_flip: bool = False) -> dict:
    """Scores of `model` on `data`; data classes are mapped to the model's by name."""
    unknown = [c for c in data.class_names if c not in meta.class_names]
    if unknown:
        raise DatasetError(f"data class(es) {unknown} are not outputs of model {meta.model_id} "
                           f"(it predicts {meta.class_names})")
    to_model = np.array([meta.class_names.index(c) for c in data.class_names])
    y_true = to_model[data.labels]
    probs = predict_proba(model, meta, data.images, device, tta_flip=tta_flip)
    result = score(y_true, probs.argmax(1), meta.class_names)
    result.update({"model_id": meta.model_id, "architecture": meta.architecture, "tta_flip": tta_flip,
                   "data_classes": list(data.class_names), "temperature": meta.temperature,
                   "calibration": reliability(probs, y_true),
                   "dropped": dict(data.dropped), "dropped_total": int(sum(data.dropped.values()))})
    return result


def evaluate_folder(data: str | Path, model: str | Path | None = None, classes: Sequence[str] | None = None,
                    device: str = "cpu", tta_flip: bool = False) -> dict:
    """Load a model (name, path, or None = shipped default) and score it on `data` (`classes` default: the
    model's classes). A FER+ folder is scored on its majority labels."""
    net, meta = load_model(model, resolve_device(device))
    dataset = load_dataset(data, list(classes) if classes else meta.class_names)
    result = evaluate_dataset(net, meta, dataset, str(resolve_device(device)), tta_flip)
    result.update({"data": str(data), "model": str(model) if model else "default"})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="FER+ split folder (label.csv), folder tree <class>/<image>, or FER2013 .csv")
    parser.add_argument("--model", default=None,
                        help="shipped model by name (default, ckplus6) or a model stem/.safetensors/.json")
    parser.add_argument("--classes", nargs="+", default=None, help="classes to score (default: the model's)")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here (default: to stdout)")
    parser.add_argument("--confusion-png", type=Path, default=None, help="also plot the confusion matrix")
    parser.add_argument("--reliability-png", type=Path, default=None, help="also plot the reliability diagram")
    parser.add_argument("--tta-flip", action="store_true", help="average over the face and its mirror image")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    try:
        result = evaluate_folder(args.data, args.model, args.classes, args.device, args.tta_flip)
    except (ModelLoadError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.confusion_png:
        plot_confusion(result["confusion"], result["class_names"], args.confusion_png,
                       f"{result['model_id']}  acc {result['accuracy']:.3f}")
    if args.reliability_png:
        cal = result["calibration"]
        plot_reliability(cal, args.reliability_png, f"{result['model_id']}\nECE {cal['ece']:.3f} "
                         f"({cal['bins']} bins, T = {result['temperature']:.2f}, n = {result['n']})")
    # Human summary on stderr, so stdout stays pure JSON when no --json file is given.
    report = sys.stderr if args.json is None else sys.stdout
    print(f"{result['model_id']} on {args.data}: accuracy {result['accuracy']:.4f} "
          f"macro-F1 {result['macro_f1']:.4f} n={result['n']} ECE {result['calibration']['ece']:.4f} "
          f"(temperature {result['temperature']:.3f}); protocol dropped {result['dropped_total']} rows "
          f"{result['dropped']}", file=report)
    for name, row in result["per_class"].items():
        print(f"  {name:10s} recall {row['recall']:.3f} precision {row['precision']:.3f} n={row['support']}",
              file=report)
    if args.json is None:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
