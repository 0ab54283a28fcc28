"""Score a saved model on a labelled folder tree (or FER2013 CSV), through the node's own preprocessing.

    python -m training.evaluate --data DIR [--model PATH] [--classes ...] --json OUT.json [--confusion-png P]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from emotion_recognition_ros.core.device import resolve_device
from emotion_recognition_ros.core.model_io import ModelLoadError, ModelMetadata, load_model

from .datasets import DatasetError, FaceDataset, load_dataset
from .engine import predict_proba
from .metrics import score
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
    y_pred = predict(model, meta, data.images, device, tta_flip)
    result = score(y_true, y_pred, meta.class_names)
    result.update({"model_id": meta.model_id, "architecture": meta.architecture, "tta_flip": tta_flip,
                   "data_classes": list(data.class_names)})
    return result


def evaluate_folder(data: str | Path, model: str | Path | None = None, classes: Sequence[str] | None = None,
                    device: str = "cpu", tta_flip: bool = False) -> dict:
    """Load a model (None = shipped default) and score it on `data` (`classes` default: the model's classes)."""
    net, meta = load_model(model, resolve_device(device))
    dataset = load_dataset(data, list(classes) if classes else meta.class_names)
    result = evaluate_dataset(net, meta, dataset, str(resolve_device(device)), tta_flip)
    result.update({"data": str(data), "model": str(model) if model else "default"})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder tree <class>/<image> or FER2013 .csv")
    parser.add_argument("--model", default=None, help="model stem/.safetensors/.json (default: shipped model)")
    parser.add_argument("--classes", nargs="+", default=None, help="classes to score (default: the model's)")
    parser.add_argument("--json", required=True, type=Path, help="write the scores here")
    parser.add_argument("--confusion-png", type=Path, default=None, help="also plot the confusion matrix")
    parser.add_argument("--tta-flip", action="store_true", help="average over the face and its mirror image")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        result = evaluate_folder(args.data, args.model, args.classes, args.device, args.tta_flip)
    except (ModelLoadError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(args.json, result)
    if args.confusion_png:
        plot_confusion(result["confusion"], result["class_names"], args.confusion_png,
                       f"{result['model_id']}  acc {result['accuracy']:.3f}")
    print(f"{result['model_id']} on {args.data}: accuracy {result['accuracy']:.4f} "
          f"macro-F1 {result['macro_f1']:.4f} n={result['n']}")
    for name, row in result["per_class"].items():
        print(f"  {name:10s} recall {row['recall']:.3f} precision {row['precision']:.3f} n={row['support']}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
