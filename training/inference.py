"""Prediction on face crops exactly as the node sees them: always through emotion_recognition_ros.core.preprocess,
with the model's temperature and optional flip TTA."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotion_recognition_ros.core.model_io import ModelMetadata
from emotion_recognition_ros.core.preprocess import faces_to_batch


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


@torch.no_grad()
def evaluate_arrays(model: nn.Module, meta: ModelMetadata, images: np.ndarray, labels: np.ndarray,
                    device: torch.device, tta_flip: bool = False) -> tuple[float, float, np.ndarray]:
    """(loss, accuracy, probabilities) on held-out faces."""
    probs = predict_proba(model, meta, list(images), device, tta_flip=tta_flip)
    loss = float(F.nll_loss(torch.log(torch.as_tensor(probs).clamp_min(1e-8)), torch.as_tensor(labels)))
    return loss, float((probs.argmax(1) == labels).mean()), probs
