"""The training loss: cross-entropy on hard labels, or against target distributions (FER+ votes), with label
smoothing."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against target distributions (FER+ votes); equals F.cross_entropy for one-hot targets."""
    if smoothing:
        targets = targets * (1 - smoothing) + smoothing / targets.shape[1]
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def classification_loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, smoothing: float
                        ) -> torch.Tensor:
    """Hard labels `y` when there are no soft targets `t`, else the targets."""
    if t is None:
        return F.cross_entropy(logits, y, label_smoothing=smoothing)
    return soft_cross_entropy(logits, t, smoothing)
