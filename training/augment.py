"""Training-time augmentation on the small (source-size) gray faces, before preprocess resizes them.

Mirrors Keras' ImageDataGenerator as used by the study (rotation, zoom, shear, horizontal flip,
brightness; 'nearest' fill), plus optional translation and random erasing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    rotation: float = 15.0  # degrees, uniform in +-rotation
    zoom: float = 0.15  # scale uniform in [1 - zoom, 1 + zoom]
    shear: float = 0.15  # degrees (Keras' unit for shear_range)
    shift: float = 0.0  # fraction of the side, uniform in +-shift on each axis
    flip: bool = True  # horizontal, p = 0.5
    brightness: tuple[float, float] = (0.6, 1.2)  # multiplicative factor range
    erase: float = 0.0  # probability of blanking one random rectangle (random erasing)

    def to_dict(self) -> dict:
        return asdict(self)


def affine_matrix(size: int, rotation: float, scale: float, shear_deg: float, tx: float, ty: float,
                  flip: bool) -> np.ndarray:
    """2x3 matrix about the image centre: flip, shear, rotate, zoom, then translate (pixels)."""
    c = (size - 1) / 2.0
    to_origin = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, c + tx], [0, 1, c + ty], [0, 0, 1]], np.float64)
    theta = np.deg2rad(rotation)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    shear = np.array([[1, -np.sin(np.deg2rad(shear_deg)), 0], [0, np.cos(np.deg2rad(shear_deg)), 0], [0, 0, 1]])
    zoom = np.diag([scale, scale, 1.0])
    mirror = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    return (back @ zoom @ rot @ shear @ mirror @ to_origin)[:2]


def augment_one(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation of a square uint8 gray image (same size out)."""
    size = image.shape[0]
    matrix = affine_matrix(
        size,
        rotation=rng.uniform(-cfg.rotation, cfg.rotation),
        scale=rng.uniform(1 - cfg.zoom, 1 + cfg.zoom),
        shear_deg=rng.uniform(-cfg.shear, cfg.shear),
        tx=rng.uniform(-cfg.shift, cfg.shift) * size,
        ty=rng.uniform(-cfg.shift, cfg.shift) * size,
        flip=bool(cfg.flip and rng.random() < 0.5),
    )
    out = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    low, high = cfg.brightness
    if (low, high) != (1.0, 1.0):
        out = np.clip(out.astype(np.float32) * rng.uniform(low, high), 0, 255).astype(np.uint8)
    if cfg.erase and rng.random() < cfg.erase:
        h, w = (int(rng.integers(size // 8, size // 3 + 1)) for _ in range(2))
        y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        out = out.copy()
        out[y:y + h, x:x + w] = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return out
