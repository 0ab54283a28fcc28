"""Grad-CAM explanations (pytorch-grad-cam), batched over all faces of a frame.

The explainer works on its own copy of the network: Grad-CAM hooks every forward pass of the module it
wraps, and the node explains in a background thread while the main thread keeps classifying.
"""
from __future__ import annotations

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


class GradCamExplainer:
    def __init__(self, model: nn.Module):
        from pytorch_grad_cam import GradCAM

        # float32 even when the classifier runs in fp16 on CUDA: pytorch-grad-cam normalises and resizes the maps
        # in numpy/OpenCV, where fp16 underflows (its 1e-7 epsilon) and cv2.resize has no half support.
        self.model = copy.deepcopy(model).float().eval()
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.cam = GradCAM(model=self.model, target_layers=[last_conv_stage(self.model)])

    def explain(self, batch: torch.Tensor, class_indices: Sequence[int]) -> np.ndarray:
        """(N, H, W) float32 maps in [0, 1] at the network input's resolution, one per face."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        if batch.shape[0] == 0:
            return np.empty((0, *batch.shape[-2:]), np.float32)
        targets = [ClassifierOutputTarget(int(c)) for c in class_indices]
        with torch.enable_grad():
            cams = self.cam(input_tensor=batch.detach().float(), targets=targets)
        return np.nan_to_num(cams.astype(np.float32, copy=False))
