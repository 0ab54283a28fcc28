"""A recipe's optimiser (adam, adamw, sgd) and learning-rate schedule (warm-up, then cosine or constant per step;
or plateau, stepped on validation loss once an epoch)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .recipe import Recipe


def create_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                               weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer '{recipe.optimizer}' (adam, adamw, sgd)")


def create_plateau(optimizer: torch.optim.Optimizer, recipe: Recipe
                   ) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The plateau scheduler when the recipe's schedule is 'plateau', else None."""
    if recipe.schedule != "plateau":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=recipe.plateau_factor,
                                                      patience=recipe.plateau_patience)


def lr_factor(recipe: Recipe, epoch: int, step: float) -> float:
    """Multiplier of the base LR at fractional epoch `epoch + step` for the per-step schedules."""
    t = epoch + step
    if recipe.warmup_epochs and t < recipe.warmup_epochs:
        return max(t / recipe.warmup_epochs, 0.01)
    if recipe.schedule == "cosine":
        span = max(recipe.epochs - recipe.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * min((t - recipe.warmup_epochs) / span, 1.0)))
    return 1.0
