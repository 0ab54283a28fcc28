"""The classifier's input for all faces of a frame, made on the model's device from one upload of the frame.

Today's path (`pipeline.crop_face` + `preprocess.resize_like_training` + `preprocess.normalize`) cuts, grays and
resizes each face with OpenCV on the CPU and only then copies the batch to the GPU. `FramePreprocessor` does the
same steps on the device, for all faces at once, with OpenCV's own arithmetic (`core.cv2_resize`):

1. upload the uint8 BGR frame once (through a reused pinned buffer on CUDA, asynchronously);
2. cut every face box as crop_face does (whole-pixel box, edge replication outside the frame: clamped indices);
3. gray as cv2.COLOR_BGR2GRAY does for uint8 (fixed-point 14-bit weights);
4. resize to the training data's native size with INTER_AREA, then to the network's input size (INTER_AREA when
   shrinking, INTER_LINEAR when enlarging), each a batched pair of matmuls with per-face weight matrices,
   rounded to uint8 levels in between as OpenCV does;
5. normalise (`preprocess.normalize`), cast to the model's dtype, channels_last.

Only box coordinates (a few integers per face) travel to the device; nothing comes back until the classifier's
probabilities. Runs on device='cpu' too, which is how it is tested against the OpenCV path
(test/test_gpu_frame.py states the tolerance).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from emotion_recognition_ros.core.cv2_resize import INTER_AREA, INTER_LINEAR, resize_weights, two_tap_uint8
from emotion_recognition_ros.core.model_io import ModelMetadata
from emotion_recognition_ros.core.preprocess import normalize

# cv2.COLOR_BGR2GRAY on uint8: Y = (1868 B + 9617 G + 4899 R + 2^13) >> 14 (OpenCV's yuv_shift = 14)
_GRAY_WEIGHTS_BGR = (1868, 9617, 4899)
_GRAY_SHIFT = 14

Box = tuple[float, float, float, float]


class FramePreprocessor:
    """Frame + face boxes -> network batch (N, C, S, S) on `device`, like Classifier.to_batch of crop_face crops."""

    def __init__(self, meta: ModelMetadata, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
        self.meta = meta
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        # float64 on the CPU reproduces OpenCV's sums to the last level; float32 on the GPU (H200 fp64 is fast
        # too, but float32 keeps every face within one grey level, which is below the classifier's noise)
        self.compute_dtype = torch.float64 if self.device.type == "cpu" else torch.float32
        self._staging: torch.Tensor | None = None
        self._staged: torch.cuda.Event | None = None  # recorded after the last copy out of the pinned buffer

    def upload(self, bgr: np.ndarray) -> torch.Tensor:
        """A uint8 BGR frame (H, W, 3) as a device tensor. On CUDA the copy is asynchronous from a pinned buffer
        that is reused while the frame size stays the same."""
        if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8 \
                or bgr.size == 0:
            shape = getattr(bgr, "shape", None)
            raise ValueError(f"expected a non-empty uint8 BGR HxWx3 frame, got {getattr(bgr, 'dtype', type(bgr))} "
                             f"{shape}")
        if self.device.type != "cuda":
            return torch.from_numpy(np.ascontiguousarray(bgr))
        if self._staging is None or tuple(self._staging.shape) != bgr.shape:
            self._staging = torch.empty(bgr.shape, dtype=torch.uint8, pin_memory=True)
        elif self._staged is not None:
            self._staged.synchronize()  # the previous frame's copy may still be reading the pinned buffer
        self._staging.numpy()[...] = bgr
        frame = self._staging.to(self.device, non_blocking=True)
        self._staged = torch.cuda.Event()
        self._staged.record(torch.cuda.current_stream(self.device))
        return frame

    def batch(self, frame: torch.Tensor | np.ndarray, boxes: Sequence[Box]) -> torch.Tensor:
        """Network input for face `boxes` (x, y, w, h in frame pixels, as given to crop_face with square=False)."""
        meta = self.meta
        if isinstance(frame, np.ndarray):
            frame = self.upload(frame)
        if not boxes:
            return torch.empty(0, meta.in_chans, meta.input_size, meta.input_size, device=self.device,
                               dtype=self.dtype)
        corners = [_pixel_box(box, frame.shape[1], frame.shape[0]) for box in boxes]
        gray, widths, heights = self._gray_crops(frame, corners)
        if meta.source_size:
            gray = self._resize(gray, widths, heights, meta.source_size, INTER_AREA)
            widths = heights = torch.full_like(widths, meta.source_size)
        size = meta.input_size
        shrinking = heights > size  # resize_like_training decides on the height (its faces are square)
        linear = self._resize(gray, widths, heights, size, INTER_LINEAR)
        area = self._resize(gray, widths, heights, size, INTER_AREA)
        gray = torch.where(shrinking[:, None, None], area, linear)
        return normalize(gray, meta).to(self.dtype).contiguous(memory_format=torch.channels_last)

    def __call__(self, frame: torch.Tensor | np.ndarray, boxes: Sequence[Box]) -> torch.Tensor:
        return self.batch(frame, boxes)

    def _gray_crops(self, frame: torch.Tensor, corners: list[tuple[int, int, int, int]]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, Hmax, Wmax) gray crops (zero-weight padding beyond each face's own size), widths, heights (N,)."""
        height, width = frame.shape[:2]
        spec = torch.tensor(corners, dtype=torch.long).to(self.device, non_blocking=True)  # x0, y0, x1, y1
        widths, heights = spec[:, 2] - spec[:, 0], spec[:, 3] - spec[:, 1]
        max_w = max(x1 - x0 for x0, _, x1, _ in corners)
        max_h = max(y1 - y0 for _, y0, _, y1 in corners)
        # clamping to the frame is crop_face's BORDER_REPLICATE
        rows = (spec[:, 1:2] + torch.arange(max_h, device=self.device)).clamp_(0, height - 1)
        cols = (spec[:, 0:1] + torch.arange(max_w, device=self.device)).clamp_(0, width - 1)
        bgr = frame[rows[:, :, None], cols[:, None, :]].to(torch.int32)  # (N, Hmax, Wmax, 3)
        b, g, r = _GRAY_WEIGHTS_BGR
        gray = (bgr[..., 0] * b + bgr[..., 1] * g + bgr[..., 2] * r + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
        return gray.to(self.compute_dtype), widths, heights

    def _resize(self, gray: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor, size: int,
                interpolation: str) -> torch.Tensor:
        """cv2.resize(uint8, (size, size), interpolation) of each face: (N, size, size) in whole levels. OpenCV
        averages areas only when shrinking both axes (rounded to nearest); otherwise it runs 2-tap fixed point."""
        wy, wx = resize_weights(widths, heights, size, size, interpolation, gray.shape[2], gray.shape[1], uint8=True)
        wy, wx = wy.to(self.compute_dtype), wx.to(self.compute_dtype)
        two_tap = two_tap_uint8(gray, wy, wx)
        if interpolation != INTER_AREA:
            return two_tap
        area = torch.round(wy @ gray @ wx.transpose(1, 2)).clamp_(0, 255)
        shrink = (widths >= size) & (heights >= size)
        return torch.where(shrink[:, None, None], area, two_tap)


def _pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """crop_face's whole-pixel corners (x0, y0, x1, y1) of a box, with its errors for boxes it cannot cut."""
    x, y, w, h = box
    x0, y0, x1, y1 = int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"degenerate face box {box}")
    if min(x1, width) <= max(0, x0) or min(y1, height) <= max(0, y0):
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    return x0, y0, x1, y1
