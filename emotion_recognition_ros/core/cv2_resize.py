"""OpenCV's resize weights, rebuilt in torch so that images can be resized on any device (CUDA included) and
still match what `cv2.resize` gives on the CPU.

Why not `torch.nn.functional.interpolate`: its 'area' mode is adaptive average pooling (whole-pixel bins), and
its bilinear mode differs from OpenCV's at the borders and in rounding. The detector and the classifier were
tuned on OpenCV's output, so the GPU path reproduces OpenCV's own coefficients (modules/imgproc/src/resize.cpp:
`computeResizeAreaTab` for INTER_AREA when shrinking, the 2-tap table otherwise, the 11-bit fixed-point
coefficients OpenCV uses for uint8 images).

A resize of an (Hs, Ws) image to (Hd, Wd) is separable: `out = Wy @ image @ Wx.T` with `Wy` (Hd, Hs) and `Wx`
(Wd, Ws) from `resize_weights`. Weights come batched: one matrix per image, padded with zero columns to a common
source size, so faces of different sizes resize in one batched matmul.
"""
from __future__ import annotations

import torch

INTER_AREA = "area"
INTER_LINEAR = "linear"
_FIXED_POINT_SCALE = 2048.0  # OpenCV's INTER_RESIZE_COEF_SCALE for uint8 images


def cv2_scales(src: torch.Tensor, dst: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inv_scale, scale) per image, computed as OpenCV does (scale = 1 / (dst / src)) with IEEE divisions of
    tensor by tensor: `scalar / tensor` in torch multiplies by a reciprocal, which moves pixel boundaries
    that fall on whole numbers (e.g. 18 * 40 / 48 = 15) by one ulp and so by one pixel after floor()."""
    ssize = src.double()
    inv_scale = torch.full_like(ssize, float(dst)) / ssize
    return inv_scale, torch.ones_like(ssize) / inv_scale


def _area_axis(src: torch.Tensor, dst: int, size: int) -> torch.Tensor:
    """INTER_AREA shrinking weights (K, dst, size) for sources of `src` pixels (K,), as computeResizeAreaTab:
    each output pixel averages the source interval [d * scale, (d + 1) * scale), partial pixels weighted by
    their overlap (overlaps under 1e-3 are dropped, as OpenCV does)."""
    scale = cv2_scales(src, dst)[1].view(-1, 1, 1)
    d = torch.arange(dst, dtype=torch.float64, device=src.device).view(1, -1, 1)
    j = torch.arange(size, dtype=torch.float64, device=src.device).view(1, 1, -1)
    ssize = src.double().view(-1, 1, 1)
    fsx1 = d * scale
    fsx2 = fsx1 + scale
    cell = torch.minimum(scale, ssize - fsx1)
    sx2 = torch.minimum(torch.floor(fsx2), ssize - 1)
    sx1 = torch.minimum(torch.ceil(fsx1), sx2)
    inside = ((j >= sx1) & (j < sx2)).double() / cell
    head = ((j == sx1 - 1) & (sx1 - fsx1 > 1e-3)).double() * (sx1 - fsx1) / cell
    tail_weight = torch.minimum(torch.clamp(fsx2 - sx2, max=1.0), cell) / cell
    tail = ((j == sx2) & (fsx2 - sx2 > 1e-3)).double() * tail_weight
    return (inside + head + tail).float().double()  # OpenCV keeps these alphas in float32


def _two_tap_axis(src: torch.Tensor, dst: int, size: int, area_mode: bool) -> torch.Tensor:
    """The 2-tap table OpenCV uses for INTER_LINEAR, and for INTER_AREA when an axis is enlarged
    ('area mode': a pixel takes its neighbour only where its cell straddles a source pixel edge)."""
    ssize = src.double().view(-1, 1)
    inv_scale, scale = (v.view(-1, 1) for v in cv2_scales(src, dst))
    d = torch.arange(dst, dtype=torch.float64, device=src.device).view(1, -1)
    if area_mode:
        sx = torch.floor(d * scale)
        fx = ((d + 1) - (sx + 1) * inv_scale).float().double()
        fx = torch.where(fx <= 0, torch.zeros_like(fx), fx - torch.floor(fx))
    else:
        fx = ((d + 0.5) * scale - 0.5).float().double()
        sx = torch.floor(fx)
        fx = fx - sx
    left = sx < 0
    fx, sx = torch.where(left, torch.zeros_like(fx), fx), torch.where(left, torch.zeros_like(sx), sx)
    right = sx >= ssize - 1
    fx, sx = torch.where(right, torch.zeros_like(fx), fx), torch.where(right, ssize - 1, sx)
    j = torch.arange(size, dtype=torch.float64, device=src.device).view(1, 1, -1)
    sx, fx = sx.unsqueeze(-1), fx.unsqueeze(-1)
    return (j == sx).double() * (1 - fx) + (j == sx + 1).double() * fx


def resize_weights(src_w: torch.Tensor, src_h: torch.Tensor, dst_w: int, dst_h: int, interpolation: str,
                   size_w: int, size_h: int, uint8: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(Wy (K, dst_h, size_h), Wx (K, dst_w, size_w)) float64 for K images of src_w x src_h pixels (K,) each.

    INTER_AREA takes true area weights only when neither axis is enlarged (as OpenCV decides, per image);
    otherwise OpenCV falls back to its 2-tap 'area mode' on both axes. `uint8` rounds 2-tap weights to 11 bits,
    as OpenCV's fixed-point path does for 8-bit images.
    """
    if interpolation not in (INTER_AREA, INTER_LINEAR):
        raise ValueError(f"unsupported interpolation '{interpolation}' (use '{INTER_AREA}' or '{INTER_LINEAR}')")
    dst_w, dst_h, size_w, size_h = int(dst_w), int(dst_h), int(size_w), int(size_h)
    area_mode = interpolation == INTER_AREA
    tap_y = _two_tap_axis(src_h, dst_h, size_h, area_mode)
    tap_x = _two_tap_axis(src_w, dst_w, size_w, area_mode)
    if uint8:
        tap_y = torch.round(tap_y * _FIXED_POINT_SCALE) / _FIXED_POINT_SCALE
        tap_x = torch.round(tap_x * _FIXED_POINT_SCALE) / _FIXED_POINT_SCALE
    if not area_mode:
        return tap_y, tap_x
    shrink = ((src_w >= dst_w) & (src_h >= dst_h)).view(-1, 1, 1)
    wy = torch.where(shrink, _area_axis(src_h, dst_h, size_h), tap_y)
    wx = torch.where(shrink, _area_axis(src_w, dst_w, size_w), tap_x)
    return wy, wx


def two_tap_uint8(images: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """OpenCV's fixed-point 2-tap resize of uint8 images (INTER_LINEAR, and INTER_AREA where it enlarges):
    (N, Hs, Ws) whole levels -> (N, Hd, Wd) whole levels, with `resize_weights(..., uint8=True)` matrices.

    The horizontal pass is exact (sums of level x 11-bit coefficient); the vertical pass reproduces the rounding
    of OpenCV's SIMD kernel (VResizeLinearVec_32s8u: ((h >> 4) * beta) >> 16 per tap, then (sum + 2) >> 2), which
    differs from round-to-nearest on about 1 pixel in 10. Integer arithmetic, so float32 devices are exact too.
    """
    ax = torch.round(wx * _FIXED_POINT_SCALE).to(images.dtype)
    ay = torch.round(wy * _FIXED_POINT_SCALE).to(torch.int32)
    h = torch.round(images @ ax.transpose(1, 2)).to(torch.int32) >> 4  # (N, Hs, Wd)
    taps = (h[:, None, :, :] * ay[:, :, :, None]) >> 16  # (N, Hd, Hs, Wd); zero weights give zero
    return ((taps.sum(2) + 2) >> 2).clamp_(0, 255).to(images.dtype)
