"""What each process trains on at each step of an epoch.

One shuffled order per epoch (dataset weights included) is cut into global batches of `batch_size`; under
torchrun each process takes its contiguous share of every global batch. Every random draw of a step is keyed
by the epoch's key and the image's position in the order (augmentation), the step (mixup) or the process
(dropout), never by a generator that the images before it advanced. So one seed gives the same global batches,
augmented the same way, whether one process or several train and whether loader workers prepare them or not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from emotion_recognition_ros.core.model_io import ModelMetadata
from emotion_recognition_ros.core.preprocess import gray_batch

from .augment import AugmentConfig, augment_one
from .data import FaceDataset
from .distributed import World

# First element of a random key after the epoch's: which kind of draw it feeds.
AUGMENT, MIXUP, DROPOUT = 0, 1, 2
CUDA_WORKERS = 4  # loader processes per GPU by default (at most the machine's cores per GPU, less one)


@dataclass
class TrainingArrays:
    """The training set as arrays at the recipe's source size."""

    images: np.ndarray  # (N, s, s) uint8
    labels: np.ndarray  # (N,) int64
    targets: np.ndarray | None = None  # (N, C) float32 soft targets; None = hard labels
    repeats: np.ndarray | None = None  # (N,) expected draws per epoch (dataset weights); None = once each

    @classmethod
    def from_dataset(cls, data: FaceDataset, size: int) -> "TrainingArrays":
        targets = data.targets.astype(np.float32) if data.targets is not None else None
        return cls(data.as_array(size), data.labels, targets, data.repeats)

    def class_shares(self, n_classes: int) -> list[float]:
        """Each class's share of an epoch's draws: the prior the network learns (the model JSON's class_prior)."""
        draws = np.bincount(self.labels, weights=self.repeats, minlength=n_classes)
        return [round(float(share), 6) for share in draws / draws.sum()]

    def balanced(self, class_balance: float) -> "TrainingArrays":
        """Rare classes drawn more often: each face's draws scaled by (its class's share) ** -class_balance, the
        epoch's length kept (0 = the data as it is, 1 = every class drawn equally often)."""
        if not 0 <= class_balance <= 1:  # also refuses NaN, which would make every draw count NaN
            raise ValueError(f"class_balance must be between 0 and 1, got {class_balance}")
        if not class_balance:
            return self
        base = self.repeats if self.repeats is not None else np.ones(len(self.labels))
        share = np.bincount(self.labels, weights=base) / base.sum()
        scaled = base * share[self.labels] ** -class_balance
        return replace(self, repeats=scaled * base.sum() / scaled.sum())


def epoch_order(n: int, rng: np.random.Generator, repeats: np.ndarray | None = None) -> np.ndarray:
    """Shuffled sample indices for one epoch; `repeats` (per sample, from dataset weights) = expected draws."""
    if repeats is None:
        return rng.permutation(n)
    whole = np.floor(repeats).astype(np.int64)
    extra = rng.random(n) < (repeats - whole)
    return rng.permutation(np.repeat(np.arange(n), whole + extra))


@dataclass
class EpochPlan:
    order: np.ndarray  # dataset index at each position of the epoch
    steps: list[tuple[int, int, int]]  # per step: this process's positions [lo, hi) and the global batch size
    key: int  # the epoch's random key

    def __len__(self) -> int:
        return len(self.steps)

    def rng(self, *path: int) -> np.random.Generator:
        return np.random.default_rng([self.key, *path])

    def torch_seed(self, *path: int) -> int:
        return int(np.random.SeedSequence([self.key, *path]).generate_state(1, np.uint64)[0] >> 1)


def plan_epoch(arrays: TrainingArrays, batch_size: int, world: World, rng: np.random.Generator) -> EpochPlan:
    """This process's steps of the next epoch; `rng` advances alike on every process."""
    order = epoch_order(len(arrays.images), rng, arrays.repeats)
    key = int(rng.integers(2**63))
    starts = list(range(0, len(order), batch_size))
    # A global batch too small to give every process two images is dropped (a 1-image batch breaks BatchNorm).
    if len(starts) > 1 and len(order) - starts[-1] < 2 * world.size:
        starts.pop()
    steps = []
    for start in starts:
        size = min(batch_size, len(order) - start)
        if size < world.size:
            raise ValueError(f"a batch of {size} images cannot be shared by {world.size} processes")
        steps.append((start + size * world.rank // world.size, start + size * (world.rank + 1) // world.size, size))
    return EpochPlan(order, steps, key)


class EpochBatches(Dataset):
    """Step i of an epoch for this process: its augmented faces at the network's input size (uint8, so that
    loader workers send little and the device normalises), labels, soft targets (or None), global batch size."""

    def __init__(self, arrays: TrainingArrays, plan: EpochPlan, augment: AugmentConfig | None,
                 meta: ModelMetadata):
        self.arrays, self.plan, self.augment, self.meta = arrays, plan, augment, meta

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
        lo, hi, global_size = self.plan.steps[step]
        idx = self.plan.order[lo:hi]
        faces = list(self.arrays.images[idx])
        if self.augment is not None:
            faces = [augment_one(face, self.augment, self.plan.rng(AUGMENT, position))
                     for face, position in zip(faces, range(lo, hi))]
        targets = self.arrays.targets
        return (torch.from_numpy(gray_batch(faces, self.meta)), torch.from_numpy(self.arrays.labels[idx]),
                None if targets is None else torch.from_numpy(targets[idx]), global_size)


def default_workers(device: torch.device) -> int:
    """0 on the CPU (the training process prepares batches between steps, no copies); on CUDA a few per GPU."""
    if device.type != "cuda":
        return 0
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, min(CUDA_WORKERS, (os.cpu_count() or 1) // per_machine - 1))


def epoch_loader(batches: EpochBatches, workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                      worker_init_fn=_one_thread if workers else None)


def _one_thread(_worker: int) -> None:
    # A worker is one of several processes per GPU: OpenCV's own thread pool would oversubscribe the cores.
    cv2.setNumThreads(1)
