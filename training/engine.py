"""Training and inference loops. Inference always goes through emotion_recognition_ros.core.preprocess."""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from emotion_recognition_ros.core.device import resolve_device
from emotion_recognition_ros.core.model_io import ModelMetadata, build_model, load_model, resolve_model
from emotion_recognition_ros.core.preprocess import faces_to_batch

from .augment import AugmentConfig, augment_batch
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import FaceDataset
from .pretrained import LITE_MEAN, LITE_STD, load_imagenet


@dataclass
class Recipe:
    """Everything that decides how a model is trained (saved into the model's metadata)."""

    architecture: str = "tf_efficientnet_lite0"
    pretrained: str = "imagenet"  # imagenet | none | model:<name or path> (start from a trained face model)
    input_size: int = 96
    source_size: int = 48
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    early_stopping: int = 0  # patience in epochs on val accuracy; 0 = train all epochs
    select: str = "last"  # last | best (best val accuracy; needs validation data)
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha) mixup; 0 = off
    drop_rate: float = 0.5
    tta_flip: bool = False  # average predictions over the face and its mirror image
    label_scheme: str = "majority"  # FER+ labels: majority (hard) | soft (vote distribution, soft-target CE)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        data = dict(data)
        aug = data.pop("augment", {})
        if "brightness" in aug:
            aug["brightness"] = tuple(aug["brightness"])
        return cls(**data, augment=AugmentConfig(**aug))


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return np.random.default_rng(seed)


def make_metadata(recipe: Recipe, class_names: Sequence[str]) -> ModelMetadata:
    return ModelMetadata(architecture=recipe.architecture, class_names=list(class_names),
                         input_size=recipe.input_size, in_chans=3, source_size=recipe.source_size,
                         mean=list(LITE_MEAN), std=list(LITE_STD), face_crop={"margin": 0.0},
                         drop_rate=recipe.drop_rate)


def create_model(recipe: Recipe, n_classes: int) -> nn.Module:
    model = build_model(recipe.architecture, n_classes, in_chans=3, drop_rate=recipe.drop_rate)
    if recipe.pretrained == "imagenet":
        load_imagenet(model, recipe.architecture)
    elif recipe.pretrained.startswith("model:"):
        load_backbone(model, recipe.pretrained[len("model:"):], recipe.architecture)
    elif recipe.pretrained != "none":
        raise ValueError(f"pretrained must be 'imagenet', 'none' or 'model:<name or path>', "
                         f"got '{recipe.pretrained}'")
    return model


def load_backbone(model: nn.Module, source: str, architecture: str) -> nn.Module:
    """Initialise from a trained model (name or path) except its classifier head (face pre-training)."""
    trained, meta = load_model(resolve_model(source), "cpu")
    if meta.architecture != architecture:
        raise ValueError(f"pretrained model '{source}' is a {meta.architecture}, the recipe wants {architecture}")
    head = model.pretrained_cfg.get("classifier", "classifier")  # timm's name of the head module
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith(f"{head}.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(f"{head}.") for k in missing):
        raise ValueError(f"pretrained model '{source}' does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    classifier = model.get_classifier()
    nn.init.normal_(classifier.weight, std=0.01)  # same near-zero new head as the ImageNet start
    nn.init.zeros_(classifier.bias)
    return model


def to_input(small: np.ndarray, meta: ModelMetadata) -> torch.Tensor:
    """(N, s, s) uint8 source-size faces -> network batch, through the same preprocess as the node."""
    return faces_to_batch(list(small), meta)


@torch.no_grad()
def predict_proba(model: nn.Module, meta: ModelMetadata, faces: Sequence[np.ndarray], device: str | torch.device = "cpu",
                  batch_size: int = 128, tta_flip: bool = False) -> np.ndarray:
    """Class probabilities (N, C) for face crops of any size (gray/BGR uint8), exactly as the node sees them."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(faces), batch_size):
        x = faces_to_batch(list(faces[start:start + batch_size]), meta).to(device,
                                                                          memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            # The metadata's temperature (fitted on validation data) is applied as the node applies it.
            probs = (model(x).float() / meta.temperature).softmax(1)
            if tta_flip:
                probs = (probs + (model(x.flip(-1)).float() / meta.temperature).softmax(1)) / 2
        out.append(probs.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(meta.class_names)), np.float32)


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                               weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer '{recipe.optimizer}' (adam, adamw, sgd)")


def _lr_factor(recipe: Recipe, epoch: int, step: float) -> float:
    """Multiplier of the base LR at fractional epoch `epoch + step` for the per-step schedules."""
    t = epoch + step
    if recipe.warmup_epochs and t < recipe.warmup_epochs:
        return max(t / recipe.warmup_epochs, 0.01)
    if recipe.schedule == "cosine":
        span = max(recipe.epochs - recipe.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * min((t - recipe.warmup_epochs) / span, 1.0)))
    return 1.0


def epoch_order(n: int, rng: np.random.Generator, repeats: np.ndarray | None = None) -> np.ndarray:
    """Shuffled sample indices for one epoch; `repeats` (per sample, from dataset weights) = expected draws."""
    if repeats is None:
        return rng.permutation(n)
    whole = np.floor(repeats).astype(np.int64)
    extra = rng.random(n) < (repeats - whole)
    return rng.permutation(np.repeat(np.arange(n), whole + extra))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against target distributions (FER+ votes); equals F.cross_entropy for one-hot targets."""
    if smoothing:
        targets = targets * (1 - smoothing) + smoothing / targets.shape[1]
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


class StepProgress:
    """A log line every `every` steps: epoch, step, running loss, s/step, ETA of the epoch and of the run."""

    def __init__(self, log: Callable[[str], None] | None, every: int, epochs: int):
        self.log, self.every, self.epochs = log, every, epochs

    def __call__(self, epoch: int, step: int, steps: int, loss: float, started: float) -> None:
        if not self.log or not self.every or (step % self.every and step != steps):
            return
        per_step = (time.perf_counter() - started) / step
        left_epoch = per_step * (steps - step)
        left_run = left_epoch + per_step * steps * (self.epochs - epoch - 1)
        self.log(f"epoch {epoch + 1}/{self.epochs} step {step}/{steps} loss {loss:.4f} {per_step:.3f} s/step "
                 f"epoch ETA {_hms(left_epoch)} run ETA {_hms(left_run)} (training steps only)")


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray, labels: np.ndarray,
                    meta: ModelMetadata, recipe: Recipe, epoch: int, rng: np.random.Generator,
                    device: torch.device, scaler: torch.amp.GradScaler | None = None,
                    base_lrs: list[float] | None = None, targets: np.ndarray | None = None,
                    repeats: np.ndarray | None = None, progress: StepProgress | None = None) -> tuple[float, float]:
    """One pass over shuffled (augmented) data; returns (mean loss, accuracy on the augmented data).

    `targets` (N, C) switches to soft-target cross-entropy; `repeats` draws each sample that many times.
    """
    model.train()
    order = epoch_order(len(images), rng, repeats)
    n_batches = max(1, math.ceil(len(order) / recipe.batch_size))
    if len(order) % recipe.batch_size == 1 and n_batches > 1:
        n_batches -= 1  # a 1-image batch breaks BatchNorm; drop that lone image this epoch
    total_loss, correct, seen = 0.0, 0, 0
    use_amp = device.type == "cuda"
    started = time.perf_counter()
    for b in range(n_batches):
        idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
        if base_lrs is not None and recipe.schedule != "plateau":
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * _lr_factor(recipe, epoch, b / n_batches)
        x = to_input(augment_batch(images[idx], recipe.augment, rng), meta).to(
            device, memory_format=torch.channels_last)
        y = torch.as_tensor(labels[idx], device=device)
        t = torch.as_tensor(targets[idx], device=device) if targets is not None else None
        lam, perm = 1.0, None
        if recipe.mixup > 0:
            lam = float(rng.beta(recipe.mixup, recipe.mixup))
            perm = torch.as_tensor(rng.permutation(len(idx)), device=device)
            x = lam * x + (1 - lam) * x[perm]
        with torch.autocast(device.type, enabled=use_amp):
            logits = model(x)
            loss = _loss(logits.float(), y, t, recipe.label_smoothing)
            if perm is not None:
                loss = lam * loss + (1 - lam) * _loss(logits.float(), y[perm], None if t is None else t[perm],
                                                      recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(idx)
        if progress is not None:
            progress(epoch, b + 1, n_batches, total_loss / seen, started)
    return total_loss / seen, correct / seen


def _loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, smoothing: float) -> torch.Tensor:
    if t is None:
        return F.cross_entropy(logits, y, label_smoothing=smoothing)
    return soft_cross_entropy(logits, t, smoothing)


@torch.no_grad()
def evaluate_arrays(model: nn.Module, meta: ModelMetadata, images: np.ndarray, labels: np.ndarray,
                    device: torch.device, tta_flip: bool = False) -> tuple[float, float, np.ndarray]:
    """(loss, accuracy, probabilities) on held-out faces."""
    probs = predict_proba(model, meta, list(images), device, tta_flip=tta_flip)
    loss = float(F.nll_loss(torch.log(torch.as_tensor(probs).clamp_min(1e-8)), torch.as_tensor(labels)))
    return loss, float((probs.argmax(1) == labels).mean()), probs


def fit(recipe: Recipe, train: FaceDataset, val: FaceDataset | None = None, device: str | torch.device = "cpu",
        seed: int = 0, progress: bool = True, log: Callable[[str], None] | None = None,
        checkpoint_dir: str | Path | None = None, resume: bool = False, log_every: int = 0,
        on_epoch: Callable[[nn.Module, ModelMetadata, dict, np.ndarray | None], None] | None = None
        ) -> tuple[nn.Module, ModelMetadata, list[dict]]:
    """Train a model on `train`; `val` drives early stopping / best-checkpoint selection when given.

    With `checkpoint_dir`, the full training state is saved there after every epoch, and `resume=True`
    continues from it exactly (same result as an uninterrupted run). `log_every` > 0 logs a progress line with
    ETA every that many steps. `on_epoch(model, meta, row, val_probs)` runs after each epoch (e.g. to save the
    best model so far). Soft targets (`train.targets`) train with soft-target cross-entropy; `train.repeats`
    sets per-sample draws per epoch (dataset weights).

    Returns the selected model (eval mode), its metadata (without metrics) and the per-epoch history.
    """
    device = resolve_device(str(device))
    if recipe.select == "best" and val is None:
        raise ValueError("select='best' needs validation data (use select='last' to train on everything)")
    rng = seed_everything(seed)
    meta = make_metadata(recipe, train.class_names)
    # channels_last: ~1.5-2x faster convolutions on CPU (oneDNN) and tensor cores alike; numerics unchanged.
    model = create_model(recipe, len(train.class_names)).to(device, memory_format=torch.channels_last)
    optimizer = _optimizer(model, recipe)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=recipe.plateau_factor,
                                                          patience=recipe.plateau_patience)
               if recipe.schedule == "plateau" else None)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    x_train = train.as_array(recipe.source_size)
    x_val = val.as_array(recipe.source_size) if val is not None else None
    history: list[dict] = []
    best_acc, best_state, best_epoch, stale = -1.0, None, -1, 0
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint folder")
        state, best_state = load_checkpoint(checkpoint_dir, model, optimizer, rng, plateau)
        if state["recipe"] != json.loads(json.dumps(recipe.to_dict())) or state["seed"] != seed or state["n_train"] != len(train):
            raise CheckpointError(f"{checkpoint_dir}: the checkpoint was written by another recipe, seed or "
                                  "training set; resume with the same command (see COMMAND.txt) or start afresh")
        history, best_acc, best_epoch, stale = state["history"], state["best_acc"], state["best_epoch"], state["stale"]
        if log:
            log(f"resumed from {checkpoint_dir} after epoch {len(history)} of {recipe.epochs}")
    steps = StepProgress(log, log_every, recipe.epochs)
    targets = train.targets.astype(np.float32) if train.targets is not None else None
    bar = tqdm(range(len(history), recipe.epochs), desc="epochs", disable=not progress, dynamic_ncols=True,
               initial=len(history), total=recipe.epochs)
    for epoch in bar:
        if recipe.early_stopping and x_val is not None and stale >= recipe.early_stopping:
            break
        start = time.perf_counter()
        loss, acc = train_one_epoch(model, optimizer, x_train, train.labels, meta, recipe, epoch, rng, device,
                                    scaler, base_lrs, targets, train.repeats, steps)
        row = {"epoch": epoch + 1, "train_loss": loss, "train_acc": acc, "lr": optimizer.param_groups[0]["lr"]}
        val_probs = None
        if x_val is not None:
            row["val_loss"], row["val_acc"], val_probs = evaluate_arrays(model, meta, x_val, val.labels, device,
                                                                         recipe.tta_flip)
            if plateau is not None:
                plateau.step(row["val_loss"])
            row["improved"] = row["val_acc"] > best_acc
            if row["improved"]:
                best_acc, best_epoch, stale = row["val_acc"], epoch + 1, 0
                if recipe.select == "best":
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_acc")})
        if log:
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, model, optimizer, rng,
                            {"recipe": recipe.to_dict(), "seed": seed, "n_train": len(train), "history": history,
                             "best_acc": best_acc, "best_epoch": best_epoch, "stale": stale}, plateau, best_state)
        if on_epoch is not None:
            on_epoch(model, meta, row, val_probs)
    if best_state is not None:
        model.load_state_dict(best_state)
    meta.training = {"recipe": recipe.to_dict(), "seed": seed, "epochs_run": len(history),
                     "selected_epoch": best_epoch if recipe.select == "best" else len(history)}
    return model.eval().to(memory_format=torch.contiguous_format), meta, history
