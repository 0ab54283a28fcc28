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
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from emotion_recognition_ros.core.device import resolve_device
from emotion_recognition_ros.core.model_io import ModelMetadata, build_model, load_model, resolve_model
from emotion_recognition_ros.core.preprocess import faces_to_batch, normalize

from .augment import AugmentConfig
from .batches import DROPOUT, MIXUP, EpochBatches, EpochPlan, TrainingArrays, default_workers, epoch_loader, plan_epoch
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import FaceDataset
from .distributed import World, broadcast_from_main, current_world, sum_across
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
    class_balance: float = 0.0  # draws per face ~ (its class's share) ** -class_balance: 0 = as is, 1 = balanced
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


@dataclass
class FitOptions:
    """How a fit runs, as opposed to what it learns (the Recipe). Only `seed` changes the trained weights.

    With `checkpoint_dir` the full training state is saved there after every epoch (by rank 0 alone) and
    `resume=True` continues from it exactly. `log_every` > 0 logs a progress line with ETA every that many steps.
    `on_epoch(model, meta, row, val_probs)` runs after each epoch (e.g. to save the best model so far).
    `workers` loader processes prepare the batches (None: 0 on the CPU, a few per GPU).
    """

    device: str | torch.device = "cpu"
    seed: int = 0
    progress: bool = True
    log: Callable[[str], None] | None = None
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    log_every: int = 0
    on_epoch: Callable[[nn.Module, ModelMetadata, dict, np.ndarray | None], None] | None = None
    workers: int | None = None


@dataclass
class Trainer:
    """What a training step uses besides the data: the network, its optimizer, schedule and place in the world."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    meta: ModelMetadata
    recipe: Recipe
    device: torch.device
    scaler: torch.amp.GradScaler | None = None  # CUDA's mixed precision
    base_lrs: list[float] | None = None  # per-step LR schedule from these; None = the optimizer's LR stays
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    progress: StepProgress | None = None
    world: World = field(default_factory=World)
    workers: int = 0
    network: nn.Module | None = None  # what the forward pass calls: `model`, or its DDP wrapper under torchrun

    def __post_init__(self) -> None:
        self.network = self.network or self.model


def make_trainer(recipe: Recipe, class_names: Sequence[str], options: FitOptions) -> Trainer:
    device, world = resolve_device(str(options.device)), current_world()
    # channels_last: ~1.5-2x faster convolutions on CPU (oneDNN) and tensor cores alike; numerics unchanged.
    model = create_model(recipe, len(class_names)).to(device, memory_format=torch.channels_last)
    optimizer = _optimizer(model, recipe)
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=recipe.plateau_factor,
                                                          patience=recipe.plateau_patience)
               if recipe.schedule == "plateau" else None)
    network = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
               if world.size > 1 else model)
    return Trainer(model, optimizer, make_metadata(recipe, class_names), recipe, device,
                   scaler=torch.amp.GradScaler("cuda") if device.type == "cuda" else None,
                   base_lrs=[g["lr"] for g in optimizer.param_groups], plateau=plateau,
                   progress=StepProgress(options.log, options.log_every, recipe.epochs), world=world,
                   workers=default_workers(device) if options.workers is None else options.workers, network=network)


def train_one_epoch(trainer: Trainer, arrays: TrainingArrays, epoch: int, rng: np.random.Generator
                    ) -> tuple[float, float]:
    """One pass over shuffled (augmented) data; returns (mean loss, accuracy on the augmented data) over every
    process. Soft `arrays.targets` train with soft-target cross-entropy; `arrays.repeats` sets per-sample draws."""
    trainer.model.train()
    plan = plan_epoch(arrays, trainer.recipe.batch_size, trainer.world, rng)
    torch.manual_seed(plan.torch_seed(DROPOUT, trainer.world.rank))  # a stream per epoch and process
    batches = epoch_loader(EpochBatches(arrays, plan, trainer.recipe.augment, trainer.meta), trainer.workers,
                           pin_memory=trainer.device.type == "cuda")
    total_loss, correct, seen = 0.0, 0, 0
    started = time.perf_counter()
    for step, batch in enumerate(batches):
        if trainer.base_lrs is not None and trainer.recipe.schedule != "plateau":
            for group, base in zip(trainer.optimizer.param_groups, trainer.base_lrs):
                group["lr"] = base * _lr_factor(trainer.recipe, epoch, step / len(plan))
        loss, hits = train_step(trainer, batch, plan, step)
        total_loss += loss * len(batch[1])
        correct += hits
        seen += len(batch[1])
        if trainer.progress is not None:
            trainer.progress(epoch, step + 1, len(plan), total_loss / seen, started)
    total_loss, correct, seen = sum_across([total_loss, correct, seen], trainer.world, trainer.device)
    return total_loss / seen, correct / seen


def train_step(trainer: Trainer, batch: tuple, plan: EpochPlan, step: int) -> tuple[float, int]:
    """One optimizer step on this process's share of a global batch; returns (its mean loss, its correct count)."""
    recipe, device = trainer.recipe, trainer.device
    gray, y, t, global_size = batch
    x = normalize(gray.to(device, non_blocking=True), trainer.meta).contiguous(memory_format=torch.channels_last)
    y = y.to(device, non_blocking=True)
    t = t.to(device, non_blocking=True) if t is not None else None
    lam, perm = 1.0, None
    if recipe.mixup > 0:  # one mixing weight per global batch; partners from the same process
        lam = float(plan.rng(MIXUP, step).beta(recipe.mixup, recipe.mixup))
        perm = torch.as_tensor(plan.rng(MIXUP, step, trainer.world.rank).permutation(len(y)), device=device)
        x = lam * x + (1 - lam) * x[perm]
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        logits = trainer.network(x)
        loss = _loss(logits.float(), y, t, recipe.label_smoothing)
        if perm is not None:
            loss = lam * loss + (1 - lam) * _loss(logits.float(), y[perm], None if t is None else t[perm],
                                                  recipe.label_smoothing)
    # DDP averages the processes' gradients; weighting each by its share makes that the global batch's mean.
    objective = loss * (len(y) * trainer.world.size / global_size) if trainer.world.size > 1 else loss
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.scaler is not None:
        trainer.scaler.scale(objective).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
    else:
        objective.backward()
        trainer.optimizer.step()
    return loss.item(), int((logits.argmax(1) == y).sum())


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


@dataclass
class Selection:
    """The run so far: per-epoch history and the validation-driven choice (best epoch, its weights, staleness)."""

    history: list[dict] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = -1
    stale: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def record(self, row: dict, model: nn.Module, keep_best: bool) -> None:
        """Mark whether this epoch improved validation accuracy and remember its weights if `keep_best`."""
        row["improved"] = row["val_acc"] > self.best_acc
        if row["improved"]:
            self.best_acc, self.best_epoch, self.stale = row["val_acc"], row["epoch"], 0
            if keep_best:
                self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    def progress(self) -> dict:
        return {"history": self.history, "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                "stale": self.stale}


def fit(recipe: Recipe, train: FaceDataset, val: FaceDataset | None = None, options: FitOptions | None = None
        ) -> tuple[nn.Module, ModelMetadata, list[dict]]:
    """Train a model on `train`; `val` drives early stopping / best-checkpoint selection when given.

    Under torchrun (a joined process group) every process trains on its share of each global batch of
    `recipe.batch_size`, rank 0 validates and shares the decision, and only rank 0 checkpoints.
    Returns the selected model (eval mode), its metadata (without metrics) and the per-epoch history.
    """
    options = options or FitOptions()
    if recipe.select == "best" and val is None:
        raise ValueError("select='best' needs validation data (use select='last' to train on everything)")
    rng = seed_everything(options.seed)
    trainer = make_trainer(recipe, train.class_names, options)
    arrays = TrainingArrays.from_dataset(train, recipe.source_size).balanced(recipe.class_balance)
    trainer.meta.class_prior = arrays.class_shares(len(train.class_names))  # what prior_correction divides out
    x_val = val.as_array(recipe.source_size) if val is not None else None
    run = Selection()
    if options.resume:
        _resume(trainer, rng, run, options, len(train))
    bar = tqdm(range(len(run.history), recipe.epochs), desc="epochs", dynamic_ncols=True, initial=len(run.history),
               total=recipe.epochs, disable=not (options.progress and trainer.world.is_main))
    for epoch in bar:
        if recipe.early_stopping and x_val is not None and run.stale >= recipe.early_stopping:
            break
        start = time.perf_counter()
        loss, acc = train_one_epoch(trainer, arrays, epoch, rng)
        row = {"epoch": epoch + 1, "train_loss": loss, "train_acc": acc, "lr": trainer.optimizer.param_groups[0]["lr"]}
        val_probs = None
        if x_val is not None:
            val_probs = _validate(trainer, x_val, val.labels, row)
            run.record(row, trainer.model, keep_best=recipe.select == "best")
        row["seconds"] = time.perf_counter() - start
        run.history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_acc")})
        if options.log:
            options.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if options.checkpoint_dir is not None and trainer.world.is_main:
            save_checkpoint(options.checkpoint_dir, trainer.model, trainer.optimizer, rng,
                            {"recipe": recipe.to_dict(), "seed": options.seed, "n_train": len(train),
                             "world_size": trainer.world.size, **run.progress()}, trainer.plateau, run.best_state)
        if options.on_epoch is not None:
            options.on_epoch(trainer.model, trainer.meta, row, val_probs)
    return _selected(trainer, run, options.seed)


def _resume(trainer: Trainer, rng: np.random.Generator, run: Selection, options: FitOptions, n_train: int) -> None:
    if options.checkpoint_dir is None:
        raise ValueError("resume needs a checkpoint folder")
    state, run.best_state = load_checkpoint(options.checkpoint_dir, trainer.model, trainer.optimizer, rng,
                                            trainer.plateau)
    recipe = json.loads(json.dumps(trainer.recipe.to_dict()))
    if state["recipe"] != recipe or state["seed"] != options.seed or state["n_train"] != n_train:
        raise CheckpointError(f"{options.checkpoint_dir}: the checkpoint was written by another recipe, seed or "
                              "training set; resume with the same command (see COMMAND.txt) or start afresh")
    run.history, run.best_acc, run.best_epoch, run.stale = (state["history"], state["best_acc"],
                                                            state["best_epoch"], state["stale"])
    if options.log:
        written_by = state.get("world_size", 1)
        note = "" if written_by == trainer.world.size else (
            f" (written by {written_by} processes, continued by {trainer.world.size}: the same global batches, "
            "per-process dropout and BatchNorm statistics differ)")
        options.log(f"resumed from {options.checkpoint_dir} after epoch {len(run.history)} of "
                    f"{trainer.recipe.epochs}{note}")


def _validate(trainer: Trainer, x_val: np.ndarray, labels: np.ndarray, row: dict) -> np.ndarray | None:
    """Rank 0 scores the whole validation set and every process gets its loss and accuracy, so selection, early
    stopping and the plateau schedule decide alike everywhere. Returns the probabilities (rank 0; else None)."""
    probs, scores = None, None
    if trainer.world.is_main:
        loss, acc, probs = evaluate_arrays(trainer.model, trainer.meta, x_val, labels, trainer.device,
                                           trainer.recipe.tta_flip)
        scores = (loss, acc)
    row["val_loss"], row["val_acc"] = broadcast_from_main(scores, trainer.world)
    if trainer.plateau is not None:
        trainer.plateau.step(row["val_loss"])
    return probs


def _selected(trainer: Trainer, run: Selection, seed: int) -> tuple[nn.Module, ModelMetadata, list[dict]]:
    if run.best_state is not None:
        trainer.model.load_state_dict(run.best_state)
    recipe = trainer.recipe
    trainer.meta.training = {"recipe": recipe.to_dict(), "seed": seed, "epochs_run": len(run.history),
                             "selected_epoch": run.best_epoch if recipe.select == "best" else len(run.history),
                             "world_size": trainer.world.size}
    return trainer.model.eval().to(memory_format=torch.contiguous_format), trainer.meta, run.history
