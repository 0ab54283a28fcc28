"""Which epoch's weights a run keeps: the per-epoch history, the validation-driven choice (best epoch, its
weights, epochs without improvement for early stopping), its restoration from a checkpoint on resume, and the
selected model handed back at the end."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from emotion_recognition_ros.core.model_io import ModelMetadata

from .checkpoint import CheckpointError, load_checkpoint
from .trainer import Trainer


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


def resume(trainer: Trainer, rng: np.random.Generator, run: Selection, checkpoint_dir: str | Path | None,
           seed: int, n_train: int, log: Callable[[str], None] | None) -> None:
    """Continue from the checkpoint in `checkpoint_dir`: the trainer's weights, optimiser, plateau and `rng`, and
    the run's history and choice; refused when another recipe, seed or training set wrote it."""
    if checkpoint_dir is None:
        raise ValueError("resume needs a checkpoint folder")
    state, run.best_state = load_checkpoint(checkpoint_dir, trainer.model, trainer.optimizer, rng,
                                            trainer.plateau)
    recipe = json.loads(json.dumps(trainer.recipe.to_dict()))
    if state["recipe"] != recipe or state["seed"] != seed or state["n_train"] != n_train:
        raise CheckpointError(f"{checkpoint_dir}: the checkpoint was written by another recipe, seed or "
                              "training set; resume with the same command (see COMMAND.txt) or start afresh")
    run.history, run.best_acc, run.best_epoch, run.stale = (state["history"], state["best_acc"],
                                                            state["best_epoch"], state["stale"])
    if log:
        written_by = state.get("world_size", 1)
        note = "" if written_by == trainer.world.size else (
            f" (written by {written_by} processes, continued by {trainer.world.size}: the same global batches, "
            "per-process dropout and BatchNorm statistics differ)")
        log(f"resumed from {checkpoint_dir} after epoch {len(run.history)} of {trainer.recipe.epochs}{note}")


def selected(trainer: Trainer, run: Selection, seed: int) -> tuple[nn.Module, ModelMetadata, list[dict]]:
    """The kept weights loaded (the best epoch's under select='best'), the training record in the metadata."""
    if run.best_state is not None:
        trainer.model.load_state_dict(run.best_state)
    recipe = trainer.recipe
    trainer.meta.training = {"recipe": recipe.to_dict(), "seed": seed, "epochs_run": len(run.history),
                             "selected_epoch": run.best_epoch if recipe.select == "best" else len(run.history),
                             "world_size": trainer.world.size}
    return trainer.model.eval().to(memory_format=torch.contiguous_format), trainer.meta, run.history
