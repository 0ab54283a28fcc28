"""Face crop -> network input, exactly as in training. Shared by the node, training and evaluation.

Order matters for accuracy: the classifier was trained on small (48 px) grayscale crops upsampled to its
input size, so a large face from a camera is first shrunk to that native size (INTER_AREA) and then
enlarged (INTER_LINEAR). This reproduces the training images' blur instead of showing the network
sharper faces than it has ever seen.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from .model_io import ModelMetadata


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 HxW from gray HxW, HxWx1, BGR HxWx3 or BGRA HxWx4."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def resize_like_training(gray: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """Resize a uint8 gray face to the network's input size via the training data's native size."""
    if gray.size == 0:
        raise ValueError("empty face crop")
    if meta.source_size and gray.shape != (meta.source_size, meta.source_size):
        gray = cv2.resize(gray, (meta.source_size, meta.source_size), interpolation=cv2.INTER_AREA)
    if gray.shape != (meta.input_size, meta.input_size):
        shrinking = gray.shape[0] > meta.input_size
        gray = cv2.resize(gray, (meta.input_size, meta.input_size),
                          interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return gray


def normalize(gray: np.ndarray | torch.Tensor, meta: ModelMetadata) -> torch.Tensor:
    """uint8 (..., H, W) -> float (..., C, H, W) in the network's normalisation."""
    x = torch.as_tensor(gray).float().div_(255.0).unsqueeze(-3)
    x = x.expand(*x.shape[:-3], meta.in_chans, *x.shape[-2:])
    mean = torch.tensor(meta.mean[: meta.in_chans], dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(meta.std[: meta.in_chans], dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def gray_batch(faces: Sequence[np.ndarray], meta: ModelMetadata) -> np.ndarray:
    """(N, S, S) uint8: each face crop (any size, gray/BGR/BGRA uint8) gray and resized exactly as in training."""
    if not faces:
        return np.empty((0, meta.input_size, meta.input_size), np.uint8)
    return np.stack([resize_like_training(to_gray(face), meta) for face in faces])


def faces_to_batch(faces: Sequence[np.ndarray], meta: ModelMetadata) -> torch.Tensor:
    """A list of face crops -> float32 batch (N, C, S, S) on the CPU (the classifier normalises on its device)."""
    return normalize(gray_batch(faces, meta), meta)


def square_box(x: float, y: float, w: float, h: float, margin: float = 0.0) -> tuple[float, float, float, float]:
    """Centre-preserving square around a box, grown by `margin` (fraction of its side) on every side."""
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return cx - side / 2.0, cy - side / 2.0, side, side


def crop_face(frame: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.0,
              square: bool = True) -> np.ndarray:
    """Crop a face box (x, y, w, h) from a frame; parts outside the frame are filled by edge replication."""
    x, y, w, h = square_box(*box, margin) if square else box
    x0, y0, x1, y1 = int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"degenerate face box {box}")
    fh, fw = frame.shape[:2]
    pad = (max(0, -y0), max(0, y1 - fh), max(0, -x0), max(0, x1 - fw))
    # Clip both ends to the frame: a negative end would wrap around as a Python slice index.
    crop = frame[min(max(0, y0), fh):min(max(0, y1), fh), min(max(0, x0), fw):min(max(0, x1), fw)]
    if crop.size == 0:
        raise ValueError(f"face box {box} lies outside the {fw}x{fh} frame")
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, borderType=cv2.BORDER_REPLICATE)
        if frame.ndim == 3 and crop.ndim == 2:  # OpenCV drops a single channel axis: keep the frame's layout
            crop = crop[:, :, None]
    return crop
