"""Average the weights of models fine-tuned from one start into one network (a uniform "model soup",
Wortsman et al., 2022): an ensemble's accuracy at one network's cost, when the models share a loss basin.

    python -m training.soup --models default runs/a/model runs/b/model \
        --val-data ../shared/data/ferplus/FER2013Valid --bn-data ../shared/data/ferplus/FER2013Train \
        --out runs/soup/model

With --greedy the models are ranked by their own validation accuracy and each is added only if the soup's
validation accuracy does not fall (Wortsman et al.'s greedy soup); otherwise all are averaged.

Averaged weights no longer match the averaged batch-norm statistics, so with --bn-data those are measured
again on training faces (plain crops, no augmentation). The temperature is fitted on --val-data, and the
soup is scored there: select on validation data, score the test set once for the model you keep.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from emotion_recognition_ros.core.model_io import ModelLoadError, ModelMetadata, load_model, save_model
from emotion_recognition_ros.core.preprocess import faces_to_batch

from .cli import set_threads
from .data import DatasetError, FaceDataset, load_dataset
from .evaluate import evaluate_dataset
from .reports import write_json
from .train import calibrate

# What the soup's inputs must agree on: the same network fed the same way.
MUST_MATCH = ("architecture", "class_names", "input_size", "in_chans", "source_size", "mean", "std", "face_crop")


def check_soupable(metas: Sequence[ModelMetadata]) -> None:
    """Raise ValueError naming the first field on which a model differs from the first one."""
    first = metas[0]
    for meta in metas[1:]:
        for name in MUST_MATCH:
            if getattr(meta, name) != getattr(first, name):
                raise ValueError(f"model {meta.model_id} differs from {first.model_id} in {name}: "
                                 f"{getattr(meta, name)!r} vs {getattr(first, name)!r}")


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform mean of floating-point tensors; integer ones (batch counters) are taken from the first."""
    averaged = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            averaged[key] = torch.stack([s[key].float() for s in states]).mean(0).to(first.dtype)
        else:
            averaged[key] = first.clone()
    return averaged


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, meta: ModelMetadata, faces: Sequence[np.ndarray],
                        batch_size: int = 128) -> int:
    """Re-measure every batch-norm layer's running mean and variance on `faces` (cumulative average over
    all of them); everything else stays in eval mode. Returns the number of layers reset."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every face counts the same
        norm.train()
    for start in range(0, len(faces), batch_size):
        model(faces_to_batch(list(faces[start:start + batch_size]), meta).to(memory_format=torch.channels_last))
    model.eval()
    return len(norms)


def as_saved(net: nn.Module) -> nn.Module:
    """`net` with its weights rounded as save_model stores them (fp16)."""
    net.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in net.state_dict().items()})
    return net


def make_soup(models: Sequence[str], bn_data: FaceDataset | None = None, bn_faces: int = 0
              ) -> tuple[nn.Module, ModelMetadata]:
    """Load `models` (names or paths), average their weights into the first one's network; with `bn_data`,
    re-measure the batch-norm statistics on its first `bn_faces` faces (0 = all)."""
    loaded = [load_model(m, "cpu") for m in models]
    metas = [meta for _, meta in loaded]
    check_soupable(metas)
    net, meta = loaded[0]
    net.load_state_dict(average_state_dicts([m.state_dict() for m, _ in loaded]))
    if bn_data is not None:
        recompute_batchnorm(net, meta, bn_data.images[:bn_faces or None])
    # The first model's record stays (its data and protocol feed the model card); the soup adds its own.
    # Model ids, not paths: a shipped model must not name the machine it was built on.
    meta.training = {**metas[0].training, "soup_of": [m.model_id for m in metas],
                     "batchnorm": f"re-measured on {len(bn_data.images[:bn_faces or None])} training faces"
                                  if bn_data is not None else "averaged",
                     "ingredients": [m.training for m in metas[1:]]}
    meta.weights_sha256 = ""
    return net, meta


def greedy_soup(models: Sequence[str], val: FaceDataset, bn_data: FaceDataset | None = None, bn_faces: int = 0,
                log=print) -> tuple[nn.Module, ModelMetadata, list[str]]:
    """The greedy soup of `models` on `val`: (network, metadata, the models it averages)."""
    def accuracy(net: nn.Module, meta: ModelMetadata) -> float:
        return evaluate_dataset(net, meta, val)["accuracy"]

    alone = {m: accuracy(*load_model(m, "cpu")) for m in models}
    ranked = sorted(models, key=lambda m: -alone[m])
    chosen, best = [ranked[0]], alone[ranked[0]]
    log(f"greedy soup: start from {ranked[0]} ({best:.4f})")
    for candidate in ranked[1:]:
        score = accuracy(*make_soup([*chosen, candidate], bn_data, bn_faces))
        kept = score >= best
        log(f"greedy soup: + {candidate} (alone {alone[candidate]:.4f}) -> {score:.4f}, "
            f"{'kept' if kept else 'left out'}")
        if kept:
            chosen, best = [*chosen, candidate], score
    net, meta = make_soup(chosen, bn_data, bn_faces) if len(chosen) > 1 else load_model(chosen[0], "cpu")
    return net, meta, chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.soup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="two or more models (names or paths)")
    parser.add_argument("--val-data", required=True, help="validation faces: temperature and the reported score")
    parser.add_argument("--bn-data", default=None, help="training faces to re-measure batch-norm statistics on")
    parser.add_argument("--bn-faces", type=int, default=0, help="use only the first N --bn-data faces (0 = all)")
    parser.add_argument("--greedy", action="store_true",
                        help="add models best first, each only if validation accuracy does not fall")
    parser.add_argument("--out", type=Path, required=True, help="output model stem (writes .safetensors + .json)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("--models needs at least two models")
    set_threads(args.threads)
    try:
        probe = load_model(args.models[0], "cpu")[1]
        bn_data = load_dataset(args.bn_data, probe.class_names) if args.bn_data else None
        val = load_dataset(args.val_data, probe.class_names, "majority")
        if args.greedy:
            net, meta, _ = greedy_soup(args.models, val, bn_data, args.bn_faces)
        else:
            net, meta = make_soup(args.models, bn_data, args.bn_faces)
    except (ModelLoadError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    net = as_saved(net)  # score the fp16 weights that ship, not the fp32 average
    meta.temperature = calibrate(net, meta, val)
    scores = evaluate_dataset(net, meta, val)
    meta.metrics = {"val": {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "n": scores["n"],
                            "ece": scores["calibration"]["ece"],
                            "protocol": f"validation: {args.val_data} ({scores['n']} images, majority labels)"}}
    save_model(net, meta, args.out)
    write_json(args.out.with_suffix(".scores.json"), scores)
    print(f"soup {meta.model_id} of {len(meta.training.get('soup_of', [1]))} models: {args.val_data} "
          f"accuracy {scores['accuracy']:.4f} "
          f"macro-F1 {scores['macro_f1']:.4f} ECE {scores['calibration']['ece']:.4f} "
          f"(temperature {meta.temperature:.3f}, batch norm {meta.training.get('batchnorm', 'as trained')}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
