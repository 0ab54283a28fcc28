"""Grad-CAM explanations (pytorch-grad-cam), batched over all faces of a frame.

The explainer works on its own copy of the network: Grad-CAM hooks every forward pass of the module it
wraps, and the node explains in a background thread while the main thread keeps classifying. Like
pytorch-grad-cam's own CAM objects it removes the hooks it registered when done: `close()`, or use it as a
context manager.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn


def last_conv_stage(model: nn.Module) -> nn.Module:
    """The layer whose activations Grad-CAM weighs: timm EfficientNet/MobileNet's final 1x1 conv
    (`conv_head`), else the module of the deepest feature stage timm reports."""
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


EXPLAIN_DTYPE = torch.float32  # see GradCamExplainer


def _gradient_starts_here(_module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
    """Forward hook on the explained layer: its output becomes a leaf that needs a gradient. Grad-CAM needs only
    d(class score)/d(this layer's activations), so backward stops here: no weight gradients, no gradients of the
    layers below."""
    return output.detach().requires_grad_(True)


class GradCamExplainer:
    """Grad-CAM on its own fp32 copy of the classifier (`EXPLAIN_DTYPE`), on the classifier's device.

    fp32 even when the classifier runs in fp16 on CUDA: pytorch-grad-cam normalises and resizes the maps in
    numpy/OpenCV, where fp16 underflows (its 1e-7 epsilon) and cv2.resize has no half support. The weights never
    require gradients. On CUDA it runs on a stream of its own, so a heatmap does not queue behind, or in front of,
    the classification of the next frame on the default stream.
    """

    def __init__(self, model: nn.Module):
        # Imported here, not at the top: pytorch-grad-cam pulls in scikit-learn and matplotlib (seconds at start-up)
        # and only a pipeline that is asked for heatmaps needs it.
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        self._target = ClassifierOutputTarget
        self.model = copy.deepcopy(model).to(EXPLAIN_DTYPE).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        target = last_conv_stage(self.model)
        # registered before GradCAM's own hooks, so they see (and hook the gradient of) the leaf
        self._leaf_hook = target.register_forward_hook(_gradient_starts_here)
        self.cam = GradCAM(model=self.model, target_layers=[target])
        device = next(self.model.parameters()).device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def explain(self, batch: torch.Tensor, class_indices: Sequence[int]) -> np.ndarray:
        """(N, H, W) float32 maps in [0, 1] at the network input's resolution, one per face."""
        if self._leaf_hook is None:
            raise RuntimeError("GradCamExplainer used after close()")
        if batch.shape[0] == 0:
            return np.empty((0, *batch.shape[-2:]), np.float32)
        targets = [self._target(int(c)) for c in class_indices]
        with self._own_stream(batch), torch.enable_grad():
            cams = self.cam(input_tensor=batch.detach().to(EXPLAIN_DTYPE), targets=targets)
        return np.nan_to_num(cams.astype(np.float32, copy=False))

    def close(self) -> None:
        """Remove the forward hooks on the explained copy: ours and Grad-CAM's. Idempotent."""
        if self._leaf_hook is not None:
            self._leaf_hook.remove()
            self._leaf_hook = None
        self.cam.activations_and_grads.release()

    def __enter__(self) -> "GradCamExplainer":
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
