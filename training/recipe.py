"""The Recipe: everything that decides how a model is trained (saved into the model's metadata).

presets.py names the shipped recipes and recipes/*.yaml holds them as files (`--config`); this module is only
the dataclass and its dict round trip.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .augment import AugmentConfig


@dataclass
class Recipe:
    """Everything that decides how a model is trained (saved into the model's metadata)."""

    architecture: str = "tf_efficientnet_lite0"
    pretrained: str = "imagenet"  # imagenet | none | model:<name or path> (start from a trained face model)
    input_size: int = 96
    source_size: int = 48
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    early_stopping: int = 0  # patience in epochs on val accuracy; 0 = train all epochs
    select: str = "last"  # last | best (best val accuracy; needs validation data)
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha) mixup; 0 = off
    drop_rate: float = 0.5
    tta_flip: bool = False  # average predictions over the face and its mirror image
    label_scheme: str = "majority"  # FER+ labels: majority (hard) | soft (vote distribution, soft-target CE)
    class_balance: float = 0.0  # draws per face ~ (its class's share) ** -class_balance: 0 = as is, 1 = balanced
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        data = dict(data)
        aug = data.pop("augment", {})
        if "brightness" in aug:
            aug["brightness"] = tuple(aug["brightness"])
        return cls(**data, augment=AugmentConfig(**aug))
