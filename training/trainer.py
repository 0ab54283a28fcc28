"""One epoch of training and its validation: the Trainer (network, optimiser, schedule, place in the world) and
the steps over an epoch's planned batches, mixup and mixed precision included."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from emotion_recognition_ros.core.model_io import ModelMetadata
from emotion_recognition_ros.core.preprocess import normalize

from .batches import DROPOUT, MIXUP, EpochBatches, EpochPlan, TrainingArrays, epoch_loader, plan_epoch
from .distributed import World, broadcast_from_main, sum_across
from .inference import evaluate_arrays
from .loss import classification_loss
from .optim import lr_factor
from .progress import StepProgress
from .recipe import Recipe


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
                group["lr"] = base * lr_factor(trainer.recipe, epoch, step / len(plan))
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
        loss = classification_loss(logits.float(), y, t, recipe.label_smoothing)
        if perm is not None:
            loss = lam * loss + (1 - lam) * classification_loss(logits.float(), y[perm],
                                                                None if t is None else t[perm],
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


def validate(trainer: Trainer, x_val: np.ndarray, labels: np.ndarray, row: dict) -> np.ndarray | None:
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
