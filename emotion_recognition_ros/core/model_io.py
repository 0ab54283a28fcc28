"""Classifier files: safetensors weights + a JSON sidecar of metadata. Never unpickles anything.

A model named `PATH` is the pair `PATH.safetensors` + `PATH.json`; any of the three spellings
(stem, .safetensors, .json) names it. The JSON says how to build the network (timm architecture by
name) and how to feed it (classes in order, input size, normalisation, face crop). Faces are always converted to gray
and copied to `in_chans` channels. The weights' SHA-256 is checked against the JSON's `weights_sha256`, and the
model id is taken from the bytes that were loaded, never from the JSON alone.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import timm
import torch
import safetensors.torch
from safetensors import SafetensorError
from torch import nn

FORMAT_VERSION = 1
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".bin"}


class ModelLoadError(RuntimeError):
    """A model file is missing, corrupt, or does not match its metadata. The message names the file."""


@dataclass
class ModelMetadata:
    """Everything needed to rebuild the classifier and to feed it exactly as in training."""

    architecture: str
    class_names: list[str]
    input_size: int = 96
    in_chans: int = 3
    source_size: int | None = 48  # faces are first resized to the training data's native size
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    face_crop: dict[str, Any] = field(default_factory=lambda: {"margin": 0.0})  # crops are always square
    drop_rate: float = 0.0
    temperature: float = 1.0  # probabilities = softmax(logits / temperature); fitted on validation data
    class_prior: list[float] | None = None  # training labels' class shares, in class_names order (prior_correction)
    training: dict[str, Any] = field(default_factory=dict)  # data, protocol, split, recipe
    metrics: dict[str, Any] = field(default_factory=dict)  # each with the protocol that produced it
    format_version: int = FORMAT_VERSION
    weights_sha256: str = ""  # of the .safetensors file; load_model checks it and fills it when empty

    @property
    def model_id(self) -> str:
        return f"{self.architecture}@{self.weights_sha256[:12]}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str = "<dict>") -> "ModelMetadata":
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"architecture", "class_names"} - data.keys()
        if missing:
            raise ModelLoadError(f"{source}: metadata lacks required field(s) {sorted(missing)}")
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ModelLoadError(f"{source}: format_version {data['format_version']} is newer than "
                                 f"this package understands ({FORMAT_VERSION}); upgrade emotion_recognition_ros")
        meta = cls(**{k: v for k, v in data.items() if k in known})
        if not meta.class_names or len(set(meta.class_names)) != len(meta.class_names):
            raise ModelLoadError(f"{source}: class_names must be a non-empty list of distinct names")
        if not isinstance(meta.temperature, (int, float)) or not 0 < meta.temperature < 1e3:
            raise ModelLoadError(f"{source}: temperature must be a positive number, got {meta.temperature!r}")
        prior = meta.class_prior
        if prior is not None and (not isinstance(prior, list) or len(prior) != len(meta.class_names)
                                  or not all(isinstance(p, (int, float)) and p > 0 for p in prior)):
            raise ModelLoadError(f"{source}: class_prior must be {len(meta.class_names)} positive numbers "
                                 f"(one per class), got {prior!r}")
        return meta


def default_model_path() -> Path:
    """The model shipped inside the package (emotion_recognition_ros/models/default.*)."""
    return Path(str(resources.files("emotion_recognition_ros") / "models" / "default.safetensors"))


# Shipped models by name: `default` (8 classes, in the wild) and `ckplus6` (the CK+ study's six classes).
MODEL_NAMES = ("default", "ckplus6")


def resolve_model(name_or_path: str | Path | None) -> Path:
    """A shipped model's name (see MODEL_NAMES) or a path -> the model's path; None = the default."""
    if name_or_path is None or str(name_or_path) in MODEL_NAMES:
        return default_model_path().with_name(f"{name_or_path or 'default'}.safetensors")
    path = Path(name_or_path).expanduser()
    looks_like_a_name = len(path.parts) == 1 and not path.suffix
    if looks_like_a_name and not (path.with_suffix(".safetensors").exists() or path.with_suffix(".json").exists()):
        raise ModelLoadError(f"model '{name_or_path}': not a shipped model ({', '.join(MODEL_NAMES)}) "
                             "and no such file (give a .safetensors path)")
    return path


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths for a model named by its stem, .safetensors or .json path."""
    path = Path(path).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(f"{path}: pickled checkpoints ({path.suffix}) are never loaded, since "
                             "unpickling runs code from the file. Export safetensors + JSON with "
                             "`python -m training.export`.")
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def build_model(architecture: str, num_classes: int, in_chans: int = 3, drop_rate: float = 0.0) -> nn.Module:
    """A timm network by name, randomly initialised (weights come from a file or training/pretrained)."""
    if not timm.is_model(architecture):
        raise ModelLoadError(f"unknown architecture '{architecture}' (not a timm model name)")
    return timm.create_model(architecture, pretrained=False, num_classes=num_classes,
                             in_chans=in_chans, drop_rate=drop_rate)


def read_metadata(path: str | Path) -> ModelMetadata:
    _, meta_path = model_paths(path)
    if not meta_path.is_file():
        raise ModelLoadError(f"{meta_path}: model metadata file not found")
    try:
        data = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{meta_path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{meta_path}: expected a JSON object")
    try:
        return ModelMetadata.from_dict(data, meta_path)
    except TypeError as exc:
        raise ModelLoadError(f"{meta_path}: bad metadata ({exc})") from exc


def _read_tensors(weights_path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a safetensors file and the SHA-256 of exactly the bytes they were read from."""
    if not weights_path.is_file():
        raise ModelLoadError(f"{weights_path}: model weights file not found")
    try:
        data = weights_path.read_bytes()
        return safetensors.torch.load(data), hashlib.sha256(data).hexdigest()
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{weights_path}: not a valid safetensors file ({exc})") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMetadata]:
    """Rebuild the network named in the metadata and load its tensors; refuse any mismatch.

    Returns the model in eval mode, in float32, on `device`. `path` is a path or a shipped model's name
    (MODEL_NAMES); None loads the shipped default.
    """
    weights_path, meta_path = model_paths(resolve_model(path or None))
    meta = read_metadata(meta_path)
    tensors, sha256 = _read_tensors(weights_path)
    if meta.weights_sha256 and meta.weights_sha256 != sha256:
        raise ModelLoadError(f"{weights_path}: SHA-256 {sha256[:12]}... differs from weights_sha256 "
                             f"{meta.weights_sha256[:12]}... in {meta_path.name}: the weights are not the ones "
                             "this metadata describes")
    model = build_model(meta.architecture, len(meta.class_names), meta.in_chans, meta.drop_rate)
    expected = model.state_dict()
    problems = _state_dict_mismatches(expected, tensors)
    if problems:
        raise ModelLoadError(f"{weights_path}: tensors do not match architecture '{meta.architecture}' with "
                             f"{len(meta.class_names)} classes from {meta_path.name}: " + "; ".join(problems[:5]))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    meta.weights_sha256 = sha256
    return model.eval().to(device), meta


def _state_dict_mismatches(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> list[str]:
    problems = [f"missing '{k}'" for k in expected if k not in got]
    problems += [f"unexpected '{k}'" for k in got if k not in expected]
    problems += [f"'{k}' has shape {tuple(got[k].shape)}, expected {tuple(v.shape)}"
                 for k, v in expected.items() if k in got and got[k].shape != v.shape]
    return problems


def save_model(model: nn.Module, meta: ModelMetadata, path: str | Path, half: bool = True) -> Path:
    """Write PATH.safetensors (fp16 by default) + PATH.json; returns the weights path."""
    weights_path, meta_path = model_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(weights_path), metadata={"format": "pt", "architecture": meta.architecture})
    meta.weights_sha256 = file_sha256(weights_path)
    meta_path.write_text(meta.to_json() + "\n")
    return weights_path
