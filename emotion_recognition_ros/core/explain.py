"""Class activation maps (CAMs), batched over all faces of a frame: a small registry of methods x layers.

Methods (`CAM_METHODS`) follow pytorch-grad-cam's definitions, computed here in torch on the activations A and
the gradients G of one layer for one class score (the logit):

- gradcam: relu(sum_c mean_xy(G_c) A_c) (Selvaraju et al., ICCV 2017);
- hirescam: relu(sum_c G_c A_c), element-wise (Draelos & Carin 2020): Grad-CAM without the spatial averaging of
  the gradient, so each cell is weighed by its own gradient;
- layercam: relu(sum_c relu(G_c) A_c) (Jiang et al., TIP 2021);
- gradcam++: Grad-CAM with the second/third-order weights of Chattopadhay et al. (WACV 2018).

The layer is a module name (`blocks.2`, `conv_head`) or a stride (`stride8`: the deepest feature stage timm
reports at 1/8 of the input). The default (`DEFAULT_METHOD` at `DEFAULT_LAYER`) was chosen on FER+ Valid by
benchmarks/explain_quality.py (docs/node.md, "Heatmaps").

Cost: the layers below the explained one run under `torch.no_grad()` (their activations need no graph), the
explained layer's output becomes a leaf that needs a gradient, and backward stops there: no weight gradients, no
gradients of the layers below. The explainer works on its own fp32 copy of the network (the node explains in a
background thread while the main thread keeps classifying), removes the hooks it registered on `close()` (or as a
context manager), and on CUDA runs on a stream of its own.

On the CPU the node's path is cheaper still (docs/node.md, "Heatmaps", for the measured rate): the classifier
keeps the explained layer's output of its own forward pass (Classifier keep_layer, PipelineResult.layer_output),
so the layers below it are not run again, and the gradient above it is computed by ONNX Runtime from a program
of forward operations only (`explain_gradient.py`: each operation's transpose in reverse order), exported on first use and
kept only if it matched autograd's gradient on real activations. Elsewhere (CUDA, a layer this does not cover,
no onnxruntime) the explainer falls back to the autograd path above.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import threading
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .explain_gradient import OrtGradient, layers_above

EXPLAIN_DTYPE = torch.float32  # see CamExplainer
log = logging.getLogger(__name__)


def _gradcam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    return torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1))


def _hirescam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    return torch.relu((grads * acts).sum(1))


def _layercam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    return torch.relu((torch.relu(grads) * acts).sum(1))


def _gradcam_plus_plus(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    g2, g3 = grads.pow(2), grads.pow(3)
    sum_acts = acts.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + sum_acts * g3 + 1e-6)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    weights = (torch.relu(grads) * alpha).sum(dim=(2, 3), keepdim=True)
    return torch.relu((weights * acts).sum(1))


CAM_METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradcam": _gradcam, "hirescam": _hirescam, "layercam": _layercam, "gradcam++": _gradcam_plus_plus}
DEFAULT_METHOD = "hirescam"
DEFAULT_LAYER = "blocks.2"  # stride 8: 12x12 cells at 96 px
LEGACY_METHOD, LEGACY_LAYER = "gradcam", "conv_head"  # before issue 27: 3x3 cells at 96 px
NORMALISATIONS = ("max", "minmax")


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The layer the old default explained: timm EfficientNet/MobileNet's final 1x1 conv (`conv_head`), else the
    module of the deepest feature stage timm reports."""
    if isinstance(getattr(model, "conv_head", None), nn.Conv2d):
        return model.conv_head
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        return model.get_submodule(last)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution to explain")
    return convs[-1]


def stride_layers(model: nn.Module) -> dict[str, str]:
    """`strideN` -> module name, from timm's feature_info (the deepest stage at each reduction)."""
    info = getattr(model, "feature_info", None)
    if not info:
        return {}
    entries = info if isinstance(info, list) else info.get_dicts()
    return {f"stride{int(e['reduction'])}": e["module"] for e in entries}


def layer_names(model: nn.Module) -> list[str]:
    """Every name `resolve_layer` accepts for this model: strides, then the module names of its stages."""
    names = list(stride_layers(model))
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.Sequential):
        names += [f"blocks.{i}" for i in range(len(blocks))]
    names += [n for n in ("conv_stem", "conv_head") if isinstance(getattr(model, n, None), nn.Module)]
    return names


def resolve_layer(model: nn.Module, layer: str) -> tuple[str, nn.Module]:
    """(module name, module) for a layer name or stride; a bad name is refused with the valid ones."""
    name = stride_layers(model).get(layer, layer)
    if name in ("", "last"):
        module = last_conv_layer(model)
        return next(n for n, m in model.named_modules() if m is module), module
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"unknown explain_layer '{layer}' (explain_layer must be one of: "
                         f"{', '.join(layer_names(model))}, or any module name of the network)") from None


def check_method(method: str) -> None:
    if method not in CAM_METHODS:
        raise ValueError(f"unknown explain_method '{method}' (explain_method must be one of: "
                         f"{', '.join(CAM_METHODS)})")


def drop_kept_layer_hooks(model: nn.Module) -> None:
    """Remove, from a copy of the classifier's network, the classifier's hook that keeps a layer's output
    (TorchBackend keep_layer): the copy's forward passes are not the classifier's."""
    for m in model.modules():
        for key, hook in list(m._forward_hooks.items()):
            if getattr(hook, "keeps_layer_output", False):
                del m._forward_hooks[key]


def fold_batchnorm(model: nn.Module, keep: nn.Module | None = None) -> int:
    """Fold every batch norm that directly follows a convolution (as siblings, in registration order, which is
    timm's forward order) into that convolution's weights and bias, in place; the norm's activation (timm's
    BatchNormAct2d) stays. The same function in eval mode, fewer operations forward and backward. `keep`: a
    convolution whose own output must stay as it was (the explained layer). Returns the number folded."""
    folded = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)) or conv is keep:
                continue
            if bn.running_var is None or bn.running_mean is None or conv.out_channels != bn.num_features:
                continue
            scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(
                bn.running_var + bn.eps)
            shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
            bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
            with torch.no_grad():
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
            after = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None))
                     if isinstance(m, nn.Module) and not isinstance(m, nn.Identity)]
            # the bare activation, not a Sequential around it: one module call fewer per norm (the upper part of
            # the network runs forward and backward for every map, and at 3x3 to 12x12 calls cost as much as maths)
            setattr(parent, bn_name, after[0] if len(after) == 1 else nn.Sequential(*after) if after else nn.Identity())
            folded += 1
    return folded


class CamExplainer:
    """CAMs of one method at one layer, on its own fp32 copy of the classifier (`EXPLAIN_DTYPE`), on the
    classifier's device.

    fp32 even when the classifier runs in fp16 on CUDA: map normalisation and resizing need the range (fp16
    underflows below 6e-8). The weights never require gradients. On CUDA it runs on a stream of its own, so a
    heatmap does not queue behind, or in front of, the classification of the next frame on the default stream.
    """

    def __init__(self, model: nn.Module, method: str = DEFAULT_METHOD, layer: str = DEFAULT_LAYER,
                 normalise: str = "max"):
        check_method(method)
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of: {', '.join(NORMALISATIONS)}")
        self.method, self.normalise, self.requested_layer = method, normalise, layer
        self._cam = CAM_METHODS[method]
        self.model = copy.deepcopy(model).to(EXPLAIN_DTYPE).eval()
        drop_kept_layer_hooks(self.model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layer, target = resolve_layer(self.model, layer)
        fold_batchnorm(self.model, keep=target)
        self.model.to(memory_format=torch.channels_last)  # as the classifier's batches come (Classifier.to_batch)
        self._acts: torch.Tensor | None = None
        self._lock = threading.Lock()  # one explanation at a time (the hook hands the activations over in self)
        self._hook = target.register_forward_hook(self._gradient_starts_here)
        self._above = layers_above(self.model, self.layer)
        device = next(self.model.parameters()).device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        # ONNX Runtime for the gradient above the layer (CPU, reused activations): built and checked on first use
        self._ort: OrtGradient | None = None
        self._ort_pending = (self._above is not None and device.type == "cpu"
                             and importlib.util.find_spec("onnxruntime") is not None)

    def _gradient_starts_here(self, _module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the explained layer. Everything before it ran under no_grad; from here on autograd
        records, and the layer's output is a leaf, so backward stops here."""
        torch.set_grad_enabled(True)  # restored by the caller's no_grad() on exit
        self._acts = output.detach().requires_grad_(True)
        return self._acts

    def cams(self, batch: torch.Tensor, class_indices: Sequence[int],
             layer_output: tuple[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(N, h, w) raw maps (non-negative, unnormalised) at the explained layer's resolution.

        `layer_output`: (layer name, that layer's output on `batch`) from the classifier's own forward pass
        (PipelineResult.layer_output). Where it is this explainer's layer, in fp32 on the same device, and the
        network above the layer can be run on its own (`layers_above`), the layers below are not run again: the
        classifier already did, with the same weights (the folded batch norms here differ by float rounding)."""
        if self._hook is None:
            raise RuntimeError("CamExplainer used after close()")
        acts = self._reusable(batch, layer_output)
        x = batch.detach().to(EXPLAIN_DTYPE).contiguous(memory_format=torch.channels_last)
        with self._lock:
            return self._cams(x, batch, class_indices, acts)

    def _reusable(self, batch: torch.Tensor, layer_output: tuple[str, torch.Tensor] | None) -> torch.Tensor | None:
        if layer_output is None or self._above is None:
            return None
        name, acts = layer_output
        if (name != self.layer or acts.dtype != EXPLAIN_DTYPE or acts.device != batch.device
                or acts.shape[0] != batch.shape[0]):
            return None
        return acts

    def _cams(self, x: torch.Tensor, batch: torch.Tensor, class_indices: Sequence[int],
              reused: torch.Tensor | None = None) -> torch.Tensor:
        if reused is not None and self._ort is not None and tuple(reused.shape[1:]) == self._ort.shape:
            with torch.no_grad():
                acts = reused.to(EXPLAIN_DTYPE)
                return self._cam(acts, self._ort(acts, self._onehot(class_indices, len(acts))))
        try:
            with self._own_stream(batch), torch.no_grad():
                if reused is None:
                    logits = self.model(x)
                    acts, self._acts = self._acts, None
                else:  # a copy: the classifier's tensor was made in inference mode, and stays the result's
                    acts = reused.clone(memory_format=torch.channels_last).requires_grad_(True)
                    torch.set_grad_enabled(True)  # as the hook does; restored by no_grad() on exit
                    logits = self._above(acts)
                index = torch.as_tensor(list(class_indices), device=logits.device).view(-1, 1)
                (grads,) = torch.autograd.grad(logits.gather(1, index).sum(), acts)
            if reused is not None and self._ort_pending:
                self._start_ort(acts.detach(), grads, class_indices, logits.shape[1])
            return self._cam(acts.detach(), grads)
        finally:
            self._acts = None

    def _onehot(self, class_indices: Sequence[int], n: int) -> torch.Tensor:
        onehot = torch.zeros(n, self._classes, dtype=EXPLAIN_DTYPE)
        onehot[torch.arange(n), torch.as_tensor(list(class_indices))] = 1.0
        return onehot

    def _start_ort(self, acts: torch.Tensor, grads: torch.Tensor, class_indices: Sequence[int], classes: int
                   ) -> None:
        """Export the gradient program (`_Gradient`) and keep its ONNX Runtime session if it gives autograd's
        gradient on these activations (to 1e-4 of its largest value); else keep using autograd, and say why."""
        self._ort_pending, self._classes = False, classes
        try:
            ort = OrtGradient(self._above, acts, classes)
            theirs = ort(acts, self._onehot(class_indices, len(acts)))
            error = float((theirs - grads).abs().max()) / max(float(grads.abs().max()), 1e-12)
        except Exception as exc:  # noqa: BLE001 - any failure leaves autograd in charge, as before
            log.warning("explainer: ONNX Runtime gradient unavailable (%s: %s); using autograd",
                        type(exc).__name__, exc)
            return
        if error > 1e-4:
            log.warning("explainer: ONNX Runtime gradient differs from autograd's by %.1e (relative); using "
                        "autograd", error)
            return
        self._ort = ort

    def explain(self, batch: torch.Tensor, class_indices: Sequence[int],
                layer_output: tuple[str, torch.Tensor] | None = None) -> np.ndarray:
        """(N, H, W) float32 maps in [0, 1] at the network input's resolution, one per face and class.

        normalise="max": each map divided by its own maximum (0 = no positive evidence for the class);
        "minmax": pytorch-grad-cam's per-map min-max scaling (the same maps as its CAM objects). Both after the
        bilinear resize to the input's size. `layer_output`: see `cams`."""
        if batch.shape[0] == 0:
            return np.empty((0, *batch.shape[-2:]), np.float32)
        cam = self.cams(batch, class_indices, layer_output)
        maps = F.interpolate(cam[:, None], size=tuple(batch.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        if self.normalise == "minmax":
            maps = maps - maps.flatten(1).min(1).values.view(-1, 1, 1)
        maps = maps / (maps.flatten(1).max(1).values.view(-1, 1, 1) + 1e-7)
        return np.nan_to_num(maps.float().cpu().numpy())

    def close(self) -> None:
        """Remove the forward hook on the explained copy and drop the ONNX Runtime session. Idempotent."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._ort, self._ort_pending = None, False

    def __enter__(self) -> "CamExplainer":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _own_stream(self, batch: torch.Tensor) -> contextlib.AbstractContextManager:
        """On CUDA: the explainer's stream, after the work that produced `batch` on the caller's stream."""
        if self.stream is None or batch.device.type != "cuda":
            return contextlib.nullcontext()
        self.stream.wait_stream(torch.cuda.current_stream(batch.device))
        batch.record_stream(self.stream)  # the caller's allocator must not reuse it while this stream reads it
        return torch.cuda.stream(self.stream)


GradCamExplainer = CamExplainer  # the name before issue 27 (it then did Grad-CAM at conv_head only)


REGION_NAMES = ("eyes_brows", "nose", "mouth", "other")


def region_masks(landmarks: np.ndarray, crop_box: Sequence[float], crop_roll: float, size: int
                 ) -> np.ndarray | None:
    """(4, size, size) boolean masks of REGION_NAMES on the classifier's (level) crop, from MTCNN's five landmarks
    in frame pixels (left eye, right eye, nose, mouth left, mouth right); None without five landmarks.

    Boxes in the level crop, in units of the eye distance d: eyes and brows from 0.6 d above the eye line to 0.3 d
    below it, 0.5 d beyond each eye; mouth from 0.3 d above the mouth corners' line to 0.35 d below it, 0.2 d
    beyond each corner; nose 0.3 d either side of the nose tip, from the eyes' box down to the mouth's. A pixel
    in two boxes belongs to the first of eyes, mouth, nose; the rest of the crop is "other"."""
    import cv2

    points = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if points.shape[0] != 5:
        return None
    x, y, side, _ = crop_box
    matrix = cv2.getRotationMatrix2D((x + side / 2.0, y + side / 2.0), crop_roll, 1.0)
    matrix[:, 2] -= (x, y)
    p = (points @ matrix[:, :2].T + matrix[:, 2]) * (size / side)
    d = max(float(np.hypot(*(p[1] - p[0]))), 1e-6)
    eye_y, mouth_y = (p[0, 1] + p[1, 1]) / 2, (p[3, 1] + p[4, 1]) / 2
    yy, xx = np.mgrid[:size, :size] + 0.5

    def box(x0, x1, y0, y1):
        return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)

    eyes = box(min(p[0, 0], p[1, 0]) - 0.5 * d, max(p[0, 0], p[1, 0]) + 0.5 * d, eye_y - 0.6 * d, eye_y + 0.3 * d)
    mouth = box(min(p[3, 0], p[4, 0]) - 0.2 * d, max(p[3, 0], p[4, 0]) + 0.2 * d, mouth_y - 0.3 * d,
                mouth_y + 0.35 * d) & ~eyes
    nose = box(p[2, 0] - 0.3 * d, p[2, 0] + 0.3 * d, eye_y + 0.3 * d, mouth_y - 0.3 * d) & ~eyes & ~mouth
    return np.stack([eyes, nose, mouth, ~(eyes | nose | mouth)])


def region_shares(heatmap: np.ndarray, landmarks: np.ndarray, crop_box: Sequence[float], crop_roll: float = 0.0
                  ) -> np.ndarray | None:
    """Each REGION_NAMES region's share of the map's mass (sums to 1; all zero for an all-zero map), or None
    without five landmarks."""
    masks = region_masks(landmarks, crop_box, crop_roll, heatmap.shape[-1])
    if masks is None:
        return None
    heat = np.clip(np.asarray(heatmap, np.float64), 0, None)
    total = heat.sum()
    if total <= 0:
        return np.zeros(len(REGION_NAMES), np.float32)
    return np.array([heat[m].sum() / total for m in masks], np.float32)
