"""Training progress lines: epoch, step, running loss, seconds per step and the ETA of the epoch and the run."""
from __future__ import annotations

import time
from typing import Callable


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
