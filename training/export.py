"""Copy a trained model to its destination (e.g. the shipped default), optionally as ONNX too.

    python -m training.export --model runs/final/model --out emotion_recognition_ros/models/default \
        [--cv runs/cv_default/cv.json] [--card-extra notes.md] [--onnx default.onnx]

The weights are re-saved as fp16 safetensors + JSON sidecar via model_io.save_model (never a pickle); a
cross-validation summary, when given, goes into the metadata's metrics with its protocol, and a model card
is written next to the weights (OUT.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from torch import nn

from emotion_recognition_ros.core.classifier.onnx_runtime import export_onnx
from emotion_recognition_ros.core.model_io import ModelLoadError, ModelMetadata, load_model, save_model

from .reports import model_card


def cv_metrics(cv_json: str | Path) -> dict:
    """The headline of a training.cv summary, in the metadata's metrics format."""
    summary = json.loads(Path(cv_json).read_text())
    return {"accuracy": summary["accuracy_mean"], "accuracy_std": summary["accuracy_std"],
            "macro_f1": summary["pooled"]["macro_f1"], "n": summary["pooled"]["n"],
            "protocol": summary["protocol"] + "; mean ± std over folds, macro-F1 pooled over all test faces",
            **{k: summary[k] for k in ("accuracy_no_tta_mean", "accuracy_tta_mean") if k in summary},
            "tta_flip": summary["recipe"].get("tta_flip", False)}


def _require_onnx() -> None:
    try:
        # Optional package, imported here only to say early that it is missing; torch.onnx needs it.
        import onnx  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("ONNX export needs the optional packages onnx and onnxscript "
                           "(pip install onnx onnxscript); they are not part of this environment") from exc


def write_onnx(model: nn.Module, meta: ModelMetadata, path: str | Path) -> Path:
    """The graph the node's ONNX Runtime backend runs (input `image`, dynamic batch), written to a file."""
    _require_onnx()
    path = Path(path)
    path.write_bytes(export_onnx(model, meta.input_size, meta.in_chans))
    return path


def export(model_path: str | Path, out: str | Path, cv_json: str | Path | None = None, card_extra: str = "",
           onnx_path: str | Path | None = None) -> Path:
    if onnx_path:
        _require_onnx()  # fail before writing anything
    model, meta = load_model(model_path, "cpu")
    if cv_json:
        meta.metrics = {"subject_cv": cv_metrics(cv_json), **meta.metrics}
    meta.weights_sha256 = ""
    weights = save_model(model, meta, out)
    model_card(meta, weights.with_suffix(".md"), card_extra)
    if onnx_path:
        write_onnx(model, meta, onnx_path)
    return weights


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained model (stem, .safetensors or .json)")
    parser.add_argument("--out", required=True, help="destination stem, e.g. emotion_recognition_ros/models/default")
    parser.add_argument("--cv", default=None, help="training.cv summary (cv.json) to record in the metadata")
    parser.add_argument("--card-extra", type=Path, default=None, help="markdown appended to the model card")
    parser.add_argument("--onnx", default=None, help="also write an ONNX file here (needs onnx installed)")
    args = parser.parse_args(argv)
    try:
        extra = args.card_extra.read_text() if args.card_extra else ""
        weights = export(args.model, args.out, args.cv, extra, args.onnx)
    except (ModelLoadError, RuntimeError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {weights}, {weights.with_suffix('.json')} and {weights.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
