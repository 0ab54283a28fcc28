"""Subject-independent k-fold cross-validation of a recipe (StratifiedGroupKFold by subject).

    python -m training.cv --preset ckplus_imagenet --folds 10 --out runs/cv_default
    python -m training.cv --preset ckplus_imagenet --folds 10 --only-folds 0 1 2 --epochs 10 --out runs/quick

Each fold's test people are never seen in training. Recipes that pick a checkpoint or stop early on
validation also hold out the next fold's people as validation; fixed-length recipes train on the other
k-1 folds. Writes per-fold results, the mean ± std of fold accuracies, pooled scores over all test faces,
and a pooled confusion matrix PNG.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.core.device import resolve_device

from .cli import add_common, load_training_data, recipe_from_args, set_threads
from .data import DatasetError, FaceDataset
from .fit import FitOptions, fit
from .recipe import Recipe
from .evaluate import evaluate_dataset
from .metrics import score
from .reports import plot_confusion, write_json
from .data.splits import subject_split, subjects_of


@dataclass
class CVPlan:
    folds: int = 10
    only: Sequence[int] | None = None  # just these folds (None: all)
    split_seed: int = 0  # StratifiedGroupKFold shuffling seed


def cross_validate(data: FaceDataset, recipe: Recipe, plan: CVPlan, options: FitOptions | None = None,
                   out: Path | None = None) -> dict:
    options = options or FitOptions()
    needs_val = recipe.select == "best" or recipe.early_stopping > 0
    device = str(resolve_device(str(options.device)))
    folds = plan.folds
    results = []
    for fold in (plan.only if plan.only is not None else range(folds)):
        split = subject_split(data, folds, fold, plan.split_seed, val=needs_val)
        assert not subjects_of(data, split.train) & subjects_of(data, split.test)
        start = time.perf_counter()
        model, meta, history = fit(recipe, data.subset(split.train), data.subset(split.val) if needs_val else None,
                                   replace(options, device=device,
                                           log=None if options.progress else _log_epoch(fold)))
        test_part = data.subset(split.test)
        scores = evaluate_dataset(model, meta, test_part, device, recipe.tta_flip)
        # The other TTA setting costs one more pass over ~70 faces: record it, it is a free ablation row.
        other = evaluate_dataset(model, meta, test_part, device, not recipe.tta_flip)
        row = {"fold": fold, "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "n": scores["n"],
               ("accuracy_tta" if not recipe.tta_flip else "accuracy_no_tta"): other["accuracy"],
               "n_train": len(split.train), "n_val": len(split.val), "epochs_run": len(history),
               "selected_epoch": meta.training["selected_epoch"], "seconds": time.perf_counter() - start,
               "test_subjects": sorted(subjects_of(data, split.test)), "confusion": scores["confusion"]}
        results.append(row)
        print(f"fold {fold}: accuracy {row['accuracy']:.4f} (n={row['n']}, {row['seconds']:.0f} s)", flush=True)
        if out is not None:
            write_json(out / "folds.json", {"folds": results, "recipe": recipe.to_dict()})
    accs = np.array([r["accuracy"] for r in results])
    pooled_confusion = np.sum([np.asarray(r["confusion"]) for r in results], axis=0)
    pooled_true = np.repeat(np.arange(len(data.class_names)), pooled_confusion.sum(1))
    pooled_pred = np.concatenate([np.repeat(np.arange(len(data.class_names)), row) for row in pooled_confusion])
    pooled = score(pooled_true, pooled_pred, data.class_names)
    other_key = "accuracy_no_tta" if recipe.tta_flip else "accuracy_tta"
    other_accs = np.array([r[other_key] for r in results])
    summary = {"protocol": f"subject-independent {folds}-fold CV (StratifiedGroupKFold by subject, "
                           f"split seed {plan.split_seed}), folds {[r['fold'] for r in results]}",
               "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
               f"{other_key}_mean": float(other_accs.mean()),
               f"{other_key}_std": float(other_accs.std(ddof=1)) if len(accs) > 1 else 0.0,
               "macro_f1_mean": float(np.mean([r["macro_f1"] for r in results])),
               "pooled": pooled, "folds": results, "recipe": recipe.to_dict(), "seed": options.seed,
               "seconds": float(sum(r["seconds"] for r in results))}
    if out is not None:
        write_json(out / "cv.json", summary)
        plot_confusion(pooled["confusion"], data.class_names, out / "confusion.png",
                       f"subject CV: {100 * summary['accuracy_mean']:.1f} ± {100 * summary['accuracy_std']:.1f}%")
    return summary


def _log_epoch(fold: int):
    def log(line: str) -> None:
        print(f"  fold {fold} {line}", flush=True)
    return log


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.cv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--only-folds", type=int, nargs="+", default=None, help="run just these folds")
    parser.add_argument("--split-seed", type=int, default=0, help="StratifiedGroupKFold shuffling seed")
    parser.add_argument("--out", type=Path, default=Path("runs/cv"))
    args = parser.parse_args(argv)
    set_threads(args.threads)
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("training.cv runs in one process (under torchrun every process would write the same "
                             "files); run folds side by side as separate commands with --only-folds")
        recipe = recipe_from_args(args)
        data = load_training_data(args, recipe)
        summary = cross_validate(data, recipe, CVPlan(args.folds, args.only_folds, args.split_seed),
                                 FitOptions(args.device, args.seed, not args.no_progress, workers=args.workers),
                                 args.out)
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['protocol']}: accuracy {100 * summary['accuracy_mean']:.2f} ± "
          f"{100 * summary['accuracy_std']:.2f}% (pooled {100 * summary['pooled']['accuracy']:.2f}%, "
          f"n={summary['pooled']['n']}) in {summary['seconds']:.0f} s; wrote {args.out}/cv.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
