"""Train one model: the study's random split, one fold of subject-independent k-fold, or all data.

    python -m training.train                                   # study preset, study's random 70/15/15 split
    python -m training.train --preset default --split subject --folds 10 --fold 0
    python -m training.train --preset default --split none --out runs/final   # all data, for shipping

Writes runs/<name>/: model.safetensors + model.json (fp16 weights + metadata), metrics.json, curves.png,
confusion.png (test part) and model_card.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence


from emotion_recognition_ros.core.device import resolve_device
from emotion_recognition_ros.core.model_io import save_model

from .cli import add_common, recipe_from_args, set_threads
from .datasets import DatasetError, FaceDataset, load_dataset
from .engine import Recipe, fit
from .evaluate import evaluate_dataset
from .reports import model_card, plot_confusion, plot_curves, write_json
from .splits import Split, random_split, subject_split


def make_split(data: FaceDataset, kind: str, split_seed: int | None, folds: int, fold: int,
               stratify: bool, need_val: bool) -> Split | None:
    if kind == "random":
        return random_split(len(data), data.labels, 3 if split_seed is None else split_seed, stratify)
    if kind == "subject":
        return subject_split(data, folds, fold, 0 if split_seed is None else split_seed, val=need_val)
    if kind == "none":
        return None
    raise ValueError(f"unknown split '{kind}' (random, subject, none)")


def describe_protocol(split: Split | None, data: FaceDataset) -> str:
    if split is None:
        return f"trained on all {len(data)} images; no held-out data"
    text = (f"{split.name}: train {len(split.train)}, val {len(split.val)}, test {len(split.test)} images")
    if split.name.startswith("random"):
        text += " (per-image split: the same people appear in train and test, so this score is optimistic)"
    else:
        text += " (test and val people never seen in training)"
    return text


def run(data: FaceDataset, recipe: Recipe, split: Split | None, out: Path, device: str = "auto", seed: int = 0,
        progress: bool = True, data_desc: str = "") -> dict:
    """Train, select, score on the test part, save model + reports under `out`. Returns the metrics dict."""
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train.log", "a")

    def log(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()

    needs_val = recipe.select == "best" or recipe.early_stopping > 0
    train_part = data if split is None else data.subset(split.train)
    val_part = data.subset(split.val) if split is not None and len(split.val) and needs_val else None
    if needs_val and val_part is None:
        raise ValueError("this recipe selects/stops on validation accuracy but the split has no validation part "
                         "(use --select last --early-stopping 0 with --split none)")
    start = time.perf_counter()
    model, meta, history = fit(recipe, train_part, val_part, device, seed, progress, log)
    seconds = time.perf_counter() - start
    protocol = describe_protocol(split, data)
    meta.training.update({"data": data_desc or f"{len(data)} images, classes {data.class_names}",
                          "protocol": protocol, "train_seconds": round(seconds, 1),
                          "device": str(resolve_device(device))})
    metrics: dict = {"protocol": protocol, "train_seconds": seconds, "history": history}
    if val_part is not None:
        metrics["val"] = evaluate_dataset(model, meta, val_part, str(resolve_device(device)), recipe.tta_flip)
    if split is not None and len(split.test):
        test = evaluate_dataset(model, meta, data.subset(split.test), str(resolve_device(device)), recipe.tta_flip)
        test["protocol"] = protocol
        metrics["test"] = test
        meta.metrics = {"test": {k: test[k] for k in ("accuracy", "macro_f1", "n", "protocol")}}
        if "val" in metrics:
            meta.metrics["val"] = {k: metrics["val"][k] for k in ("accuracy", "macro_f1", "n")}
        plot_confusion(test["confusion"], test["class_names"], out / "confusion.png",
                       f"test: acc {test['accuracy']:.3f} (n={test['n']})")
    save_model(model, meta, out / "model")
    metrics["model_id"] = meta.model_id
    metrics["recipe"] = recipe.to_dict()
    write_json(out / "metrics.json", metrics)
    plot_curves(history, out / "curves.png", f"{recipe.architecture} @{recipe.input_size}px — {protocol[:60]}")
    model_card(meta, out / "model_card.md")
    log_file.close()
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser)
    parser.add_argument("--split", default="random", choices=["random", "subject", "none"],
                        help="random = the study's per-image 70/15/15; subject = grouped k-fold; none = all data")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="random: train_test_split random_state (study: 3); subject: fold shuffling seed (0)")
    parser.add_argument("--stratify", action="store_true", help="stratify the random split by class")
    parser.add_argument("--folds", type=int, default=10, help="subject split: number of folds")
    parser.add_argument("--fold", type=int, default=0, help="subject split: which fold is the test fold")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/<preset>_<split>)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    try:
        recipe = recipe_from_args(args)
        data = load_dataset(args.data, args.classes)
        needs_val = recipe.select == "best" or recipe.early_stopping > 0
        split = make_split(data, args.split, args.split_seed, args.folds, args.fold, args.stratify, needs_val)
        out = args.out or Path("runs") / f"{args.preset}_{args.split}"
        print(f"data: {args.data} ({len(data)} images {data.counts()})")
        print(f"protocol: {describe_protocol(split, data)}")
        metrics = run(data, recipe, split, out, args.device, args.seed, not args.no_progress,
                      f"{Path(args.data).name}: {len(data)} images, {data.counts()}")
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "test" in metrics:
        print(f"test accuracy {metrics['test']['accuracy']:.4f} macro-F1 {metrics['test']['macro_f1']:.4f} "
              f"(n={metrics['test']['n']})")
    if "val" in metrics:
        print(f"val accuracy {metrics['val']['accuracy']:.4f}")
    print(f"wrote {out}/ (model.safetensors, model.json, metrics.json, curves.png, model_card.md) "
          f"in {metrics['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
