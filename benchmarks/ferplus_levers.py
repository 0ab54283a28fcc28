"""FER+ Valid (selection data only): a model alone, with flip TTA, and averaged with a second model.

    python -m benchmarks.ferplus_levers --second runs/ferplus_cycle2_e5/model
"""
from __future__ import annotations

import argparse

import numpy as np

from emotion_recognition_ros.core.data_paths import dataset_path
from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.core.model_io import load_model
from training.data import load_dataset
from training.inference import predict_proba
from training.metrics import score


def line(name: str, probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> str:
    result = score(labels, probs.argmax(1), class_names)
    balanced = np.mean([row["recall"] for row in result["per_class"].values() if row["support"]])
    return (f"{name}: accuracy {result['accuracy']:.4f} macro-F1 {result['macro_f1']:.4f} "
            f"balanced recall {balanced:.4f} n {result['n']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ferplus_levers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--second", required=True, help="the model to average with (same classes)")
    parser.add_argument("--data", default=str(dataset_path("ferplus") / "FER2013Valid"))
    args = parser.parse_args(argv)
    set_threads(1)
    first, meta = load_model(args.model, "cpu")
    second, second_meta = load_model(args.second, "cpu")
    val = load_dataset(args.data, meta.class_names)
    alone = predict_proba(first, meta, val.images, "cpu")
    print(line(args.model, alone, val.labels, meta.class_names), flush=True)
    flipped = predict_proba(first, meta, val.images, "cpu", tta_flip=True)
    print(line(f"{args.model} + flip TTA", flipped, val.labels, meta.class_names), flush=True)
    other = predict_proba(second, second_meta, val.images, "cpu")
    print(line(args.second, other, val.labels, meta.class_names), flush=True)
    print(line("mean of both", (alone + other) / 2, val.labels, meta.class_names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
