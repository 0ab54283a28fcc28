"""Arguments shared by train and cv: data (one dataset or a weighted mixture), preset + recipe overrides,
device, threads."""
from __future__ import annotations

import argparse
from pathlib import Path
from dataclasses import replace

import yaml

from emotion_recognition_ros.core.classes import CKPLUS6, EMOTIONS
from emotion_recognition_ros.core.device import set_threads  # noqa: F401  (train and cv import it from here)
from emotion_recognition_ros.core.face_data.ckplus import DEFAULT_CKPLUS
from emotion_recognition_ros.core.face_data.ferplus import is_ferplus

from .data import FaceDataset, load_dataset, load_mixture
from .data.rolls import level_faces, read_rolls
from .recipe import Recipe
from .presets import PRESETS, get_preset, preset_name

# CLI flag -> Recipe field (None = same name with dashes turned into underscores)
RECIPE_FLAGS = {
    "--arch": ("architecture", str), "--pretrained": ("pretrained", str), "--input-size": ("input_size", int),
    "--epochs": ("epochs", int), "--batch-size": ("batch_size", int), "--lr": ("lr", float),
    "--optimizer": ("optimizer", str), "--weight-decay": ("weight_decay", float), "--schedule": ("schedule", str),
    "--warmup-epochs": ("warmup_epochs", int), "--early-stopping": ("early_stopping", int),
    "--select": ("select", str), "--label-smoothing": ("label_smoothing", float), "--mixup": ("mixup", float),
    "--drop-rate": ("drop_rate", float), "--label-scheme": ("label_scheme", str),
    "--class-balance": ("class_balance", float),
}
AUG_FLAGS = {"--rotation": ("rotation", float), "--zoom": ("zoom", float), "--shear": ("shear", float),
             "--shift": ("shift", float), "--erase": ("erase", float)}


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_CKPLUS)],
                        help="folder tree <class>/<image> (CK+48 layout gives subject ids), FER+ split folder "
                             "(label.csv) or FER2013 .csv; several = one training set mixed by --data-weights")
    parser.add_argument("--data-weights", nargs="+", type=float, default=None,
                        help="per --data dataset: draws of each image per epoch (1 = once; 2 = twice; 0.5 = half)")
    parser.add_argument("--level-rolls", nargs="+", default=None, metavar="ROLLS_JSON",
                        help="level each face's eyes by its measured roll (python -m training.data.rolls), as the "
                             "node's align_faces does; applies to --data and --val-data")
    parser.add_argument("--classes", nargs="+", default=None,
                        help="classes in output order (default: the 8 emotions when FER+ is among the data, "
                             "else the six of CK+; add 'contempt' if wanted)")
    parser.add_argument("--preset", default="study", type=preset_name, choices=sorted(PRESETS),
                        help="base recipe: study (the paper's CK+ setup, 48 px), ckplus_imagenet (CK+ from ImageNet, "
                             "96 px), ferplus (the shipped default model's), ckplus6 (the shipped ckplus6 model's)")
    parser.add_argument("--config", type=Path, default=None, metavar="RECIPE.yaml",
                        help="base recipe from a file instead of --preset (training/recipes/*.yaml are the presets)")
    recipe = parser.add_argument_group("recipe overrides (default: the preset's or --config's value)")
    for flag, (_, kind) in {**RECIPE_FLAGS, **AUG_FLAGS}.items():
        recipe.add_argument(flag, type=kind, default=None)
    recipe.add_argument("--tta-flip", dest="tta_flip", action="store_true", default=None)
    recipe.add_argument("--no-tta-flip", dest="tta_flip", action="store_false")
    recipe.add_argument("--no-flip", dest="flip", action="store_false", default=None, help="no mirror augmentation")
    recipe.add_argument("--brightness", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"))
    parser.add_argument("--seed", type=int, default=0, help="training seed (init order, augmentation, shuffling)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (CUDA trains with AMP)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV CPU threads")
    parser.add_argument("--workers", type=int, default=None,
                        help="data-loading worker processes (default: 0 on the CPU, up to 4 per GPU on CUDA); "
                             "the trained weights do not depend on it")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still print per epoch)")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    recipe = recipe_file(args.config) if args.config else get_preset(args.preset)
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


def recipe_file(path: Path) -> Recipe:
    """A recipe from a YAML file written as Recipe.to_dict (training/recipes/*.yaml)."""
    return Recipe.from_dict(yaml.safe_load(Path(path).read_text()))


def resolve_classes(args: argparse.Namespace) -> list[str]:
    if args.classes:
        return list(args.classes)
    return list(EMOTIONS) if any(is_ferplus(p) for p in args.data) else list(CKPLUS6)


def load_training_data(args: argparse.Namespace, recipe: Recipe) -> FaceDataset:
    """The --data dataset (FER+ in the recipe's label scheme), or the weighted mixture of several."""
    classes = resolve_classes(args)
    if len(args.data) == 1 and not args.data_weights:
        return levelled(args, load_dataset(args.data[0], classes, recipe.label_scheme))
    return levelled(args, load_mixture(args.data, classes, args.data_weights, recipe.label_scheme))


def levelled(args: argparse.Namespace, data: FaceDataset) -> FaceDataset:
    """`data` with its faces levelled by --level-rolls (unchanged without the flag)."""
    if args.level_rolls:
        count = level_faces(data, read_rolls(args.level_rolls))
        data.notes.append(f"{count} of {len(data)} faces levelled by their measured roll ({' '.join(args.level_rolls)})")
    return data


def describe_data(args: argparse.Namespace, data: FaceDataset) -> str:
    weights = f" weights {args.data_weights}" if args.data_weights else ""
    dropped = f"; dropped by the label protocol: {data.dropped}" if data.dropped else ""
    dropped += "".join(f"; {note}" for note in data.notes)
    # The last two path parts (e.g. ferplus/FER2013Train): the metadata ships, a build machine's path must not.
    names = " + ".join("/".join(Path(p).parts[-2:]) for p in args.data)
    return f"{names}{weights}: {len(data)} images, {data.counts()}{dropped}"

