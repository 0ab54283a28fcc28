"""`python -m training.train` under `torchrun --nproc_per_node 2` (gloo, CPU) trains what one process trains.

Each process takes half of every global batch (the same order, the same per-image augmentation), DDP averages
the gradients, so the two runs take the same optimizer steps and differ only by float32 summation order (two
half-batch means averaged instead of one mean). The network uses GroupNorm (timm's `test_efficientnet_gn`)
because BatchNorm would normalise each half-batch by its own statistics, which is a real difference between
the two, not a rounding one. Dropout is off for the same reason (each process draws its own masks).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from emotion_recognition_ros.core.model_io import read_metadata
from ferplus_fixture import write_split
from training.batches import TrainingArrays, plan_epoch
from training.distributed import World
from training.model_factory import create_model
from training.recipe import Recipe
from training.train import main as train_main

# Weights after 2 epochs agree to this, while training moves them over 100 times as far (asserted below).
# Observed on the 2-core CPU (2026-12-01): max |difference| 2.4e-7 (float32 rounding), moved 4.9e-3.
WEIGHT_TOLERANCE = 1e-5


# (images, global batch, processes, steps): a last global batch too small to give every process two images is
# dropped (17 = 8 + 8 + 1 on one process; 19 = 8 + 8 + 3 on two), one big enough is kept (20 = 8 + 8 + 4 on two);
# weighted: 23 images drawn 0.5 to 2 times are 30 draws = 9 + 9 + 9 + 3 on three processes.
@pytest.mark.parametrize("n, batch, world_size, steps, weighted",
                         [(17, 8, 1, 2, False), (19, 8, 2, 2, False), (20, 8, 2, 3, False), (23, 9, 3, 3, True)])
def test_the_processes_shares_make_up_the_one_process_batches(n: int, batch: int, world_size: int, steps: int,
                                                              weighted: bool):
    repeats = np.linspace(0.5, 2.0, n).astype(np.float32) if weighted else None
    arrays = TrainingArrays(np.zeros((n, 4, 4), np.uint8), np.zeros(n, np.int64), repeats=repeats)
    single = plan_epoch(arrays, batch, World(), np.random.default_rng(1))
    shares = [plan_epoch(arrays, batch, World(rank, world_size), np.random.default_rng(1)) for rank in range(world_size)]
    assert all(len(plan) == steps and plan.key == single.key for plan in shares)
    for step in range(steps):
        parts = [plan.order[plan.steps[step][0]:plan.steps[step][1]] for plan in shares]
        assert min(len(part) for part in parts) >= 2  # never a 1-image BatchNorm batch on any process
        lo, hi, size = single.steps[step]
        assert np.array_equal(np.concatenate(parts), single.order[lo:hi]) and size == hi - lo
        assert all(plan.steps[step][2] == size for plan in shares)


def _args(tmp_path: Path) -> list[str]:
    # Two FER+ folders mixed with weights 1 and 0.5: the per-process split keeps the mixture's draws.
    train_a, train_b = write_split(tmp_path / "TrainA", repeat=3), write_split(tmp_path / "TrainB", repeat=2)
    val = write_split(tmp_path / "Valid")
    return ["--preset", "ferplus", "--data", str(train_a), str(train_b), "--data-weights", "1", "0.5",
            "--split", "none", "--val-data", str(val), "--arch", "test_efficientnet_gn", "--pretrained", "none",
            "--input-size", "32", "--epochs", "2", "--batch-size", "8", "--drop-rate", "0", "--seed", "5",
            "--no-progress", "--log-every", "0"]


def _model_weights(run: Path) -> dict[str, torch.Tensor]:
    """The last epoch's float32 weights (the checkpoint; model.safetensors is fp16)."""
    return {k: v for k, v in load_file(str(run / "ckpt.safetensors")).items() if k.startswith("model.")}


def test_two_processes_train_what_one_process_trains(tmp_path: Path):
    args = _args(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert train_main(args + ["--out", str(one)]) == 0
    # --workers 1 here and 0 above: loader worker processes must not change the result either.
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "training.train", *args, "--out", str(two), "--workers", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # Rank 0 alone writes: the same files as one process, one command line and one line per epoch in the log.
    assert sorted(p.relative_to(two) for p in two.rglob("*")) == sorted(p.relative_to(one) for p in one.rglob("*"))
    log = (two / "train.log").read_text()
    assert log.count("command (2 processes): python -m training.train") == 1
    assert [line.split(" ", 1)[1].startswith("epoch=") for line in log.splitlines()].count(True) == 2
    assert done.stdout.count("wrote ") == 1

    metrics = {run: json.loads((run / "metrics.json").read_text()) for run in (one, two)}
    assert metrics[one]["world_size"] == 1 and metrics[two]["world_size"] == 2
    assert read_metadata(two / "model").training["world_size"] == 2
    assert read_metadata(two / "best" / "model").training["world_size"] == 2
    for row_one, row_two in zip(metrics[one]["history"], metrics[two]["history"], strict=True):
        assert abs(row_one["train_loss"] - row_two["train_loss"]) < 1e-4
        assert row_one["val_acc"] == row_two["val_acc"] and row_one["improved"] == row_two["improved"]

    a, b = _model_weights(one), _model_weights(two)
    difference = max(float((a[k] - b[k]).abs().max()) for k in a)
    torch.manual_seed(5)  # fit's initialisation: how far training moved the weights
    start = create_model(Recipe(architecture="test_efficientnet_gn", pretrained="none", drop_rate=0.0), 8).state_dict()
    moved = max(float((a[f"model.{k}"] - v).abs().max()) for k, v in start.items())
    assert difference < WEIGHT_TOLERANCE < moved / 100, (difference, moved)
