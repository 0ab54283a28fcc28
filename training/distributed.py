"""Several training processes (`torchrun`): this process's place in the group and the few collectives training
needs. Without torchrun the world is one process and nothing here talks to anyone.

torchrun describes the group in the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
`init_world` joins it with nccl on CUDA and gloo on the CPU, and gives each process its own GPU on a machine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from emotion_recognition_ros.core.device import resolve_device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # index among the processes on this machine (= its GPU under torchrun)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run folder, logs and evaluates for selection."""
        return self.rank == 0


def current_world() -> World:
    """The group this process has joined (by `init_world` or any launcher), else a world of one."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def init_world(device: str) -> tuple[World, torch.device]:
    """Join torchrun's group when the environment names one of several processes; returns the world and this
    process's device ('auto'/'cuda' become the local rank's GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World(), resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if device.strip().lower() in ("auto", "cuda"):
            resolved = resolve_device(f"cuda:{local_rank}")
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    return current_world(), resolved


def close_world() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_from_main(value: Any, world: World) -> Any:
    """Rank 0's `value` on every rank (a small picklable object, e.g. the validation scores)."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_across(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sum of every rank's `values` (float64; on `device` because nccl reduces GPU tensors)."""
    if world.size == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()
