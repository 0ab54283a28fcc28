"""Arguments shared by train and cv: data, preset + recipe overrides, device, threads."""
from __future__ import annotations

import argparse
from dataclasses import replace

from emotion_recognition_ros.core.device import set_threads  # noqa: F401  (train and cv import it from here)
from emotion_recognition_ros.core.model_io import DEFAULT_CLASSES

from .datasets import DEFAULT_CKPLUS
from .engine import Recipe
from .presets import PRESETS, get_preset

# CLI flag -> Recipe field (None = same name with dashes turned into underscores)
RECIPE_FLAGS = {
    "--arch": ("architecture", str), "--pretrained": ("pretrained", str), "--input-size": ("input_size", int),
    "--epochs": ("epochs", int), "--batch-size": ("batch_size", int), "--lr": ("lr", float),
    "--optimizer": ("optimizer", str), "--weight-decay": ("weight_decay", float), "--schedule": ("schedule", str),
    "--warmup-epochs": ("warmup_epochs", int), "--early-stopping": ("early_stopping", int),
    "--select": ("select", str), "--label-smoothing": ("label_smoothing", float), "--mixup": ("mixup", float),
    "--drop-rate": ("drop_rate", float),
}
AUG_FLAGS = {"--rotation": ("rotation", float), "--zoom": ("zoom", float), "--shear": ("shear", float),
             "--shift": ("shift", float), "--erase": ("erase", float)}


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=str(DEFAULT_CKPLUS),
                        help="folder tree <class>/<image> (CK+48 layout gives subject ids) or FER2013 .csv")
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES),
                        help="classes in output order (default: the six; add 'contempt' if wanted)")
    parser.add_argument("--preset", default="study", choices=sorted(PRESETS), help="base recipe")
    recipe = parser.add_argument_group("recipe overrides (default: the preset's value)")
    for flag, (_, kind) in {**RECIPE_FLAGS, **AUG_FLAGS}.items():
        recipe.add_argument(flag, type=kind, default=None)
    recipe.add_argument("--tta-flip", dest="tta_flip", action="store_true", default=None)
    recipe.add_argument("--no-tta-flip", dest="tta_flip", action="store_false")
    recipe.add_argument("--no-flip", dest="flip", action="store_false", default=None, help="no mirror augmentation")
    recipe.add_argument("--brightness", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"))
    parser.add_argument("--seed", type=int, default=0, help="training seed (init order, augmentation, shuffling)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (CUDA trains with AMP)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still print per epoch)")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    recipe = get_preset(args.preset)
    changes = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _) in RECIPE_FLAGS.items()}
    recipe = replace(recipe, **{k: v for k, v in changes.items() if v is not None})
    if args.tta_flip is not None:
        recipe.tta_flip = args.tta_flip
    aug = {field: getattr(args, flag[2:]) for flag, (field, _) in AUG_FLAGS.items()}
    aug = {k: v for k, v in aug.items() if v is not None}
    if args.flip is not None:
        aug["flip"] = args.flip
    if args.brightness is not None:
        aug["brightness"] = tuple(args.brightness)
    recipe.augment = replace(recipe.augment, **aug)
    return recipe
