"""Train one model: the study's random split, one fold of subject-independent k-fold, or all data.

    python -m training.train                                   # study preset, study's random 70/15/15 split
    python -m training.train --preset ckplus_imagenet --split subject --folds 10 --fold 0
    python -m training.train --preset ckplus_imagenet --split none --out runs/final   # all data, for shipping
    python -m training.train --preset ferplus --data ../shared/data/ferplus/FER2013Train --split none \
        --val-data ../shared/data/ferplus/FER2013Valid --out runs/ferplus      # in-the-wild, 8 classes
    python -m training.train ... --out runs/ferplus --resume                   # continue after an interruption

Writes runs/<name>/: model.safetensors + model.json (fp16 weights + metadata), metrics.json, curves.png,
confusion.png (test part) and model_card.md; with --val-data also best/model.* after every epoch that
improved validation accuracy (temperature fitted on that validation data), and ckpt.* (the state --resume
continues from) after every epoch.
"""
from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn

from emotion_recognition_ros.core.device import resolve_device
from emotion_recognition_ros.core.model_io import ModelMetadata, save_model

from .temperature import fit_temperature, reliability
from .checkpoint import CheckpointError
from .cli import (add_common, describe_data, levelled, load_training_data, recipe_from_args, resolve_classes,
                  set_threads)
from .data import DatasetError, FaceDataset, load_dataset
from .distributed import World, close_world, current_world, init_world
from .fit import FitOptions, fit
from .inference import predict_proba
from .recipe import Recipe
from .evaluate import evaluate_dataset
from .reports import model_card, plot_confusion, plot_curves, write_json
from .data.splits import Split, random_split, subject_split


@dataclass
class SplitSpec:
    kind: str = "random"  # random | subject | none
    seed: int | None = None  # random: train_test_split random_state (study: 3); subject: fold shuffling (0)
    folds: int = 10
    fold: int = 0
    stratify: bool = False


def make_split(data: FaceDataset, spec: SplitSpec, need_val: bool) -> Split | None:
    if spec.kind == "random":
        return random_split(len(data), data.labels, 3 if spec.seed is None else spec.seed, spec.stratify)
    if spec.kind == "subject":
        return subject_split(data, spec.folds, spec.fold, 0 if spec.seed is None else spec.seed, val=need_val)
    if spec.kind == "none":
        return None
    raise ValueError(f"unknown split '{spec.kind}' (random, subject, none)")


def describe_protocol(split: Split | None, data: FaceDataset, val_desc: str = "") -> str:
    if split is None:
        if val_desc:
            return f"trained on all {len(data)} training images; selected and calibrated on {val_desc}; no test"
        return f"trained on all {len(data)} images; no held-out data"
    text = (f"{split.name}: train {len(split.train)}, val {len(split.val)}, test {len(split.test)} images")
    if split.name.startswith("random"):
        text += " (per-image split: the same people appear in train and test, so this score is optimistic)"
    else:
        text += " (test and val people never seen in training)"
    return text


@dataclass
class RunData:
    """What one run trains and scores on, and how its reports describe it."""

    data: FaceDataset
    split: Split | None = None  # None: train on all of `data`
    val_data: FaceDataset | None = None  # the validation set when there is no split (e.g. FER+ Valid)
    data_desc: str = ""
    val_desc: str = ""
    preset: str = ""  # the recipe's preset name, for the metadata

    def parts(self, recipe: Recipe) -> tuple[FaceDataset, FaceDataset | None]:
        """(training part, validation part or None) for this recipe."""
        needs_val = recipe.select == "best" or recipe.early_stopping > 0
        split = self.split
        train = self.data if split is None else self.data.subset(split.train)
        val = self.val_data if self.val_data is not None else (
            self.data.subset(split.val) if split is not None and len(split.val) and needs_val else None)
        if needs_val and val is None:
            raise ValueError("this recipe selects/stops on validation accuracy but the split has no validation "
                             "part (use --select last --early-stopping 0 with --split none, or give --val-data)")
        return train, val

    def protocol(self) -> str:
        return describe_protocol(self.split, self.data, self.val_desc if self.val_data is not None else "")


def run(inputs: RunData, recipe: Recipe, out: Path, options: FitOptions | None = None) -> dict:
    """Train, select, score on the test part, save model + reports under `out`. Returns the metrics dict.

    `inputs.val_data` (e.g. FER+ Valid) is the validation set when there is no split; it selects the model and
    fits its temperature. Every epoch is checkpointed under `out` (`options.resume` continues from there).
    Under torchrun every process trains; rank 0 alone writes `out` and returns the metrics (others: {}).
    """
    options = replace(options or FitOptions(), checkpoint_dir=out)
    if not current_world().is_main:
        fit(recipe, *inputs.parts(recipe), replace(options, log=None, on_epoch=None))
        return {}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "a") as log_file:
        def log(line: str) -> None:
            log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            log_file.flush()
            if not options.progress:
                print(line, flush=True)

        train_part, val_part = inputs.parts(recipe)
        on_epoch = _best_so_far_writer(out, inputs, val_part, log, recipe) if val_part is not None else None
        device = str(resolve_device(str(options.device)))
        start = time.perf_counter()
        model, meta, history = fit(recipe, train_part, val_part, replace(options, log=log, on_epoch=on_epoch))
        fitted = Fitted(model, meta, history, time.perf_counter() - start)
        meta.training.update({"preset": inputs.preset or "custom",
                              "data": inputs.data_desc or f"{len(inputs.data)} images, classes {inputs.data.class_names}",
                              "protocol": inputs.protocol(), "train_seconds": round(fitted.seconds, 1),
                              "seconds_per_epoch": [round(r["seconds"], 1) for r in history], "device": device})
        return _score_and_save(fitted, inputs, recipe, out, device)


@dataclass
class Fitted:
    model: nn.Module
    meta: ModelMetadata
    history: list[dict]
    seconds: float


def _score_and_save(fitted: Fitted, inputs: RunData, recipe: Recipe, out: Path, device: str) -> dict:
    """Calibrate on validation, score the test part, write the model and every report; the metrics dict."""
    model, meta, history = fitted.model, fitted.meta, fitted.history
    _, val_part = inputs.parts(recipe)
    split, protocol = inputs.split, meta.training["protocol"]
    metrics: dict = {"protocol": protocol, "train_seconds": fitted.seconds, "history": history,
                     "world_size": meta.training["world_size"]}
    if val_part is not None:
        meta.temperature = calibrate(model, meta, val_part, device)
        metrics["val"] = evaluate_dataset(model, meta, val_part, device, recipe.tta_flip)
    if split is not None and len(split.test):
        test = evaluate_dataset(model, meta, inputs.data.subset(split.test), device, recipe.tta_flip)
        test["protocol"] = protocol
        metrics["test"] = test
        meta.metrics = {"test": {k: test[k] for k in ("accuracy", "macro_f1", "n", "protocol")}}
        plot_confusion(test["confusion"], test["class_names"], out / "confusion.png",
                       f"test: acc {test['accuracy']:.3f} (n={test['n']})")
    if "val" in metrics:
        meta.metrics["val"] = {**{k: metrics["val"][k] for k in ("accuracy", "macro_f1", "n")},
                               "ece": metrics["val"]["calibration"]["ece"],
                               "protocol": f"validation: {inputs.val_desc or 'held-out part of the split'}"}
    save_model(model, meta, out / "model")
    metrics["model_id"] = meta.model_id
    metrics["recipe"] = recipe.to_dict()
    write_json(out / "metrics.json", metrics)
    plot_curves(history, out / "curves.png", f"{recipe.architecture} @{recipe.input_size}px — {protocol[:60]}")
    model_card(meta, out / "model_card.md")
    return metrics


def calibrate(model, meta, val: FaceDataset, device: str = "cpu") -> float:
    """Temperature fitted on `val` through the node's path (single forward pass, no TTA)."""
    plain = copy.copy(meta)
    plain.temperature = 1.0
    probs = predict_proba(model, plain, val.images, device)
    return fit_temperature(np.log(np.clip(probs, 1e-12, None)), val.labels)


def _best_so_far_writer(out: Path, inputs: RunData, val: FaceDataset, log, recipe: Recipe):
    """on_epoch callback: after an epoch that improved validation accuracy, save it as out/best/model.*
    (fp16 + JSON, temperature fitted on the validation set), so a usable model exists before the end."""

    protocol = inputs.protocol()

    def on_epoch(model, meta, row, val_probs) -> None:
        if not row.get("improved") or val_probs is None:
            return
        snapshot = copy.deepcopy(meta)
        log_probs = np.log(np.clip(val_probs, 1e-12, None))
        snapshot.temperature = fit_temperature(log_probs, val.labels)
        tempered = np.exp(log_probs / snapshot.temperature)
        tempered /= tempered.sum(1, keepdims=True)
        snapshot.training = {"preset": inputs.preset or "custom", "recipe": recipe.to_dict(), "protocol": protocol,
                             "epoch": row["epoch"], "world_size": current_world().size,
                             "note": "best validation accuracy so far, written during training"}
        snapshot.metrics = {"val": {"accuracy": row["val_acc"], "n": len(val),
                                    "ece": reliability(tempered, val.labels)["ece"],
                                    "protocol": f"validation accuracy after epoch {row['epoch']}: {protocol}"}}
        save_model(model, snapshot, out / "best" / "model")
        log(f"epoch {row['epoch']}: best so far (val_acc {row['val_acc']:.4f}, temperature "
            f"{snapshot.temperature:.3f}) -> {out / 'best' / 'model.safetensors'}")

    return on_epoch


def _train(args: argparse.Namespace, argv: Sequence[str] | None, world: World, device) -> tuple[dict, Path]:
    recipe = recipe_from_args(args)
    data = load_training_data(args, recipe)
    needs_val = (recipe.select == "best" or recipe.early_stopping > 0) and args.val_data is None
    split = make_split(data, SplitSpec(args.split, args.split_seed, args.folds, args.fold, args.stratify), needs_val)
    val_data = levelled(args, load_dataset(args.val_data, resolve_classes(args), "majority")) if args.val_data else None
    val_desc = f"{args.val_data} ({len(val_data)} images, majority labels)" if val_data is not None else ""
    out = args.out or Path("runs") / f"{args.preset}_{args.split}"
    if world.is_main:
        print(f"data: {describe_data(args, data)}")
        print(f"protocol: {describe_protocol(split, data, val_desc)}")
        out.mkdir(parents=True, exist_ok=True)
        processes = f" ({world.size} processes)" if world.size > 1 else ""
        with open(out / "train.log", "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} command{processes}: python -m training.train "
                     f"{shlex.join(sys.argv[1:] if argv is None else list(argv))}\n")
    inputs = RunData(data, split, val_data, describe_data(args, data), val_desc, args.preset)
    options = FitOptions(str(device), args.seed, not args.no_progress, resume=args.resume, log_every=args.log_every,
                         workers=args.workers)
    return run(inputs, recipe, out, options), out


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
    parser.add_argument("--val-data", default=None,
                        help="validation set for --split none (e.g. FER+ Valid, majority labels): selects the "
                             "model, fits its temperature; never pass a test set here")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--log-every", type=int, default=50, help="progress line with ETA every N steps (0 = off)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    try:
        world, device = init_world(args.device)
        metrics, out = _train(args, argv, world, device)
    except (DatasetError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        close_world()
    if not world.is_main:
        return 0
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
