"""A recipe's network and metadata: the architecture with its start (ImageNet weights, none, or a trained face
model's backbone) and the ModelMetadata the node reads back."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from emotion_recognition_ros.core.model_io import ModelMetadata, build_model, load_model, resolve_model

from .pretrained import LITE_MEAN, LITE_STD, load_imagenet
from .recipe import Recipe


def make_metadata(recipe: Recipe, class_names: Sequence[str]) -> ModelMetadata:
    return ModelMetadata(architecture=recipe.architecture, class_names=list(class_names),
                         input_size=recipe.input_size, in_chans=3, source_size=recipe.source_size,
                         mean=list(LITE_MEAN), std=list(LITE_STD), face_crop={"margin": 0.0},
                         drop_rate=recipe.drop_rate)


def create_model(recipe: Recipe, n_classes: int) -> nn.Module:
    model = build_model(recipe.architecture, n_classes, in_chans=3, drop_rate=recipe.drop_rate)
    if recipe.pretrained == "imagenet":
        load_imagenet(model, recipe.architecture)
    elif recipe.pretrained.startswith("model:"):
        load_backbone(model, recipe.pretrained[len("model:"):], recipe.architecture)
    elif recipe.pretrained != "none":
        raise ValueError(f"pretrained must be 'imagenet', 'none' or 'model:<name or path>', "
                         f"got '{recipe.pretrained}'")
    return model


def load_backbone(model: nn.Module, source: str, architecture: str) -> nn.Module:
    """Initialise from a trained model (name or path) except its classifier head (face pre-training)."""
    trained, meta = load_model(resolve_model(source), "cpu")
    if meta.architecture != architecture:
        raise ValueError(f"pretrained model '{source}' is a {meta.architecture}, the recipe wants {architecture}")
    head = model.pretrained_cfg.get("classifier", "classifier")  # timm's name of the head module
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith(f"{head}.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(f"{head}.") for k in missing):
        raise ValueError(f"pretrained model '{source}' does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    classifier = model.get_classifier()
    nn.init.normal_(classifier.weight, std=0.01)  # same near-zero new head as the ImageNet start
    nn.init.zeros_(classifier.bias)
    return model
