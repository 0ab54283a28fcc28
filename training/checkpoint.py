"""Per-epoch training checkpoints that resume exactly, without pickles.

`ckpt.safetensors` holds every tensor (model, optimizer moments, torch's RNG state, the best model so far);
`ckpt.json` holds everything else (epoch, history, selection state, numpy's RNG state, the optimizer's and
scheduler's plain settings, the recipe the run was started with). Both are written to temporary names and
renamed, so an interruption mid-write leaves the previous epoch's checkpoint intact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

CKPT_STEM = "ckpt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or from a different recipe; the message names the file."""


def checkpoint_paths(folder: str | Path) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / f"{CKPT_STEM}.safetensors", folder / f"{CKPT_STEM}.json"


def has_checkpoint(folder: str | Path) -> bool:
    return all(p.is_file() for p in checkpoint_paths(folder))


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        plain["state"][str(pid)] = {}
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
                plain["state"][str(pid)][name] = "tensor"
            else:
                plain["state"][str(pid)][name] = value
    return tensors, plain


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state = {}
    for pid, slots in plain["state"].items():
        state[int(pid)] = {name: tensors[f"optim.{pid}.{name}"] if value == "tensor" else value
                           for name, value in slots.items()}
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    rng: np.random.Generator, progress: dict[str, Any], scheduler: Any = None,
                    best_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Everything needed to continue after the epoch just finished. `progress` must be JSON-serialisable."""
    weights, meta = checkpoint_paths(folder)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_plain = _split_optimizer(optimizer.state_dict())
    tensors.update({k: v.detach().cpu().contiguous() for k, v in optim_tensors.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    for k, v in (best_state or {}).items():
        tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    plain = {"progress": progress, "optimizer": optim_plain, "numpy_rng": rng.bit_generator.state,
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "has_best": best_state is not None}
    tmp_weights, tmp_meta = weights.with_suffix(".safetensors.tmp"), meta.with_suffix(".json.tmp")
    save_file(tensors, str(tmp_weights))
    tmp_meta.write_text(json.dumps(plain, indent=1))
    os.replace(tmp_weights, weights)
    os.replace(tmp_meta, meta)
    return weights


def load_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    rng: np.random.Generator, scheduler: Any = None
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore model, optimizer, RNGs and scheduler in place; returns (progress, best_state or None)."""
    weights, meta = checkpoint_paths(folder)
    if not (weights.is_file() and meta.is_file()):
        raise CheckpointError(f"{folder}: no checkpoint to resume ({weights.name} + {meta.name} not both there)")
    try:
        tensors = load_file(str(weights))
        plain = json.loads(meta.read_text())
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} / {meta}: unreadable checkpoint ({exc})") from exc
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(_join_optimizer(tensors, plain["optimizer"]))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{weights}: does not fit this model/optimizer ({exc})") from exc
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = plain["numpy_rng"]
    if scheduler is not None and plain.get("scheduler") is not None:
        scheduler.load_state_dict(plain["scheduler"])
    best = ({k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
            if plain.get("has_best") else None)
    return plain["progress"], best
