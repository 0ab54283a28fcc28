"""PipelineConfig and the single table of its settings: default, description, range or choices, read-only.

The node declares its ROS parameters from `PIPELINE_PARAMETERS` (ros/params.py). This module is a leaf (it imports
nothing of the package), so the detectors may name `PipelineConfig` without a cycle; `check_ranges` refuses values
outside the table, and core/settings_check.py adds the checks against the detector and device registries.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    description: str
    bounds: tuple[float, float] | None = None  # inclusive range of a number
    choices: tuple[str, ...] | None = None  # the accepted strings (None: any string, or checked elsewhere)
    read_only: bool = False  # only at start-up (models, devices, threads are built once)
    any_type: bool = False  # the value may come as any type (e.g. a camera index or a path)


BACKENDS = ("auto", "torch", "onnxruntime")

PIPELINE_PARAMETERS: dict[str, ParamSpec] = {
    "model": ParamSpec("default", "classifier: a shipped model's name (default = 8 classes for real faces, "
                       "ckplus6 = the CK+ study's six) or a .safetensors file with its .json", read_only=True),
    "device": ParamSpec("auto", "auto | cpu | cuda | cuda:N; auto falls back to the CPU when CUDA is unavailable",
                        read_only=True),
    "backend": ParamSpec("auto", "classifier inference: auto (ONNX Runtime on the CPU, torch on CUDA) | torch | "
                         "onnxruntime", choices=BACKENDS, read_only=True),
    "threads": ParamSpec(1, "intra-op threads for torch, OpenCV and ONNX Runtime (pin to the cores the node may use)",
                         (1, 64), read_only=True),
    "detector": ParamSpec("mtcnn", "face detector by name (mtcnn, mtcnn_torch, full_frame); mtcnn runs as mtcnn_torch on CUDA", read_only=True),
    "detection_threshold": ParamSpec(0.9, "minimum face detector confidence", (0.0, 1.0)),
    "mtcnn_thresholds": ParamSpec((0.6, 0.7, 0.7), "MTCNN P/R/O-Net stage thresholds"),
    "min_face_size": ParamSpec(60, "smallest face to detect, pixels (full-frame scale)", (12, 4096)),
    "detect_scale": ParamSpec(1.0, "run the detector on the frame scaled by this (for MTCNN, min_face_size is the "
                              "surer speed lever)", (0.1, 1.0)),
    "detect_async": ParamSpec(False, "while faces are tracked, detect in a background thread and classify every "
                              "frame at once (uses a second core; boxes lag the detector by a few frames)"),
    "detect_every_n": ParamSpec(5, "full face detection at least every Nth frame while faces are tracked; in between "
                                "tracked faces are re-measured (track_refine), and a face lost makes that frame a "
                                "full detection; new faces appear within N frames (with detect_async: start a "
                                "background detection at most every Nth frame)", (1, 30)),
    "track_refine": ParamSpec(True, "between full detections re-measure each tracked face near its old box (MTCNN "
                              "O-Net alone, far cheaper than a full detection); false: carry the old boxes unchanged"),
    "prior_correction": ParamSpec(0.4, "operating point: how much of the class prior the model learned (FER+: mostly "
                                  "neutral) is divided out; 0 = as trained, 1 = every class equally likely a priori; "
                                  "higher finds more subtle expressions and calls fewer faces neutral; the default "
                                  "was chosen on FER+ Valid (docs/node.md)", (0.0, 1.0)),
    "align_faces": ParamSpec(True, "rotate each face's crop so its eyes are level (MTCNN's eye landmarks) before "
                             "classifying it, as a rolled head would look upright; scale and position stay the "
                             "detector's; on CUDA it classifies host crops (docs/node.md)"),
    "face_margin": ParamSpec(0.0, "extra crop margin per side, fraction of the face side, on top of the model's",
                             (-0.3, 1.0)),
    "max_faces": ParamSpec(10, "most faces classified per frame (highest detector scores first)", (1, 100)),
    "smoothing": ParamSpec(0.5, "EMA weight of past probabilities per track; 0 = off", (0.0, 0.99)),
    "track_iou": ParamSpec(0.3, "minimum box overlap (IoU) to continue a track", (0.05, 0.95)),
    "track_confirm_hits": ParamSpec(1, "detections before a track is published", (1, 30)),
    "track_max_misses": ParamSpec(5, "detection rounds a track survives without a match", (0, 300)),
    # The registry is core/explain.CAM_METHODS (a test keeps the two equal); the default was chosen on FER+ Valid.
    "explain_method": ParamSpec("hirescam", "heatmap method: gradcam | hirescam | layercam | gradcam++ "
                                "(docs/node.md, Heatmaps)", choices=("gradcam", "hirescam", "layercam", "gradcam++")),
    "explain_layer": ParamSpec("blocks.2", "layer the heatmap explains, by module name (blocks.2, conv_head) or "
                               "stride (stride8 = 12x12 cells at 96 px); a name the network lacks is refused with "
                               "the valid ones"),
}


def choice_problem(name: str, spec: ParamSpec, value: Any) -> str | None:
    """Why `value` is not one of `spec.choices`, or None (also None for a spec without choices)."""
    if spec.choices is None or value in spec.choices:
        return None
    return f"unknown {name} '{value}' ({name} must be one of: {', '.join(spec.choices)})"


def _default(name: str) -> Any:
    return PIPELINE_PARAMETERS[name].default


@dataclass
class PipelineConfig:
    """Settings of one EmotionPipeline; defaults and meanings: PIPELINE_PARAMETERS."""

    model: str = _default("model")  # a shipped model's name (model_io.MODEL_NAMES) or a path
    device: str = _default("device")
    backend: str = _default("backend")
    threads: int = _default("threads")  # ONNX Runtime's session threads (torch/OpenCV: core.device.set_threads)
    detector: str = _default("detector")
    detection_threshold: float = _default("detection_threshold")
    mtcnn_thresholds: tuple[float, float, float] = _default("mtcnn_thresholds")
    min_face_size: int = _default("min_face_size")
    detect_scale: float = _default("detect_scale")
    detect_async: bool = _default("detect_async")
    detect_every_n: int = _default("detect_every_n")
    track_refine: bool = _default("track_refine")
    prior_correction: float = _default("prior_correction")
    align_faces: bool = _default("align_faces")
    face_margin: float = _default("face_margin")
    max_faces: int = _default("max_faces")
    smoothing: float = _default("smoothing")
    track_iou: float = _default("track_iou")
    track_confirm_hits: int = _default("track_confirm_hits")
    track_max_misses: int = _default("track_max_misses")
    explain_method: str = _default("explain_method")
    explain_layer: str = _default("explain_layer")


CONFIG_FIELDS = tuple(f.name for f in fields(PipelineConfig))
RUNTIME_FIELDS = tuple(name for name in CONFIG_FIELDS if not PIPELINE_PARAMETERS[name].read_only)


def check_ranges(values: Mapping[str, Any]) -> str | None:
    """The reason a set of pipeline settings is outside the table's ranges and choices, or None (keys that are
    not settings are ignored). Device and detector names are checked against their registries in
    core/settings_check.py, which sits above this module so the table imports nothing of the package."""
    for name, value in values.items():
        spec = PIPELINE_PARAMETERS.get(name)
        if spec is None:
            continue
        if reason := choice_problem(name, spec, value):
            return reason
        if spec.bounds is not None and not spec.bounds[0] <= value <= spec.bounds[1]:
            return f"{name} must be in [{spec.bounds[0]}, {spec.bounds[1]}], got {value}"
    if "mtcnn_thresholds" in values:
        t = list(values["mtcnn_thresholds"])
        if len(t) != 3 or not all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in t):
            return f"mtcnn_thresholds must be three numbers in [0, 1], got {t}"
    return None
