"""The expression classifier: loads a safetensors+JSON model once, batches all faces of a frame.

Preprocessing is `preprocess.py`'s (the same code training evaluation uses); only the final
normalisation runs on the model's device, so on CUDA the tensor math happens on the GPU in fp16.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import model_io
from .onnx_backend import OnnxRuntimeRunner, onnxruntime_available
from .preprocess import normalize, resize_like_training, to_gray

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a usable torch.device. 'auto' falls back to CPU (with a
    warning) when CUDA is missing; an explicit CUDA device that does not exist is an error."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        log.warning("device 'auto': CUDA is not available, running on the CPU")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        try:
            device = torch.device(spec)
        except RuntimeError as exc:
            raise ValueError(f"bad device '{spec}' (use auto, cpu, cuda or cuda:N)") from exc
        if not torch.cuda.is_available():
            raise ValueError(f"device '{spec}' requested but CUDA is not available (use 'auto' or 'cpu')")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device '{spec}': only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    raise ValueError(f"bad device '{spec}' (use auto, cpu, cuda or cuda:N)")


def validate_device_spec(spec: str) -> str | None:
    """None if `spec` is syntactically a device name, else the reason (no CUDA probing)."""
    spec = (spec or "").strip().lower()
    if spec in ("auto", "cpu", "cuda"):
        return None
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return None
    return f"bad device '{spec}' (use auto, cpu, cuda or cuda:N)"


BACKENDS = ("auto", "torch", "onnxruntime")


def resolve_backend(spec: str, device: torch.device) -> str:
    """'auto' -> ONNX Runtime on the CPU when it is installed, else torch; torch on CUDA.
    An explicit 'onnxruntime' that cannot run is an error rather than a silent fallback."""
    spec = (spec or "auto").strip().lower()
    if spec not in BACKENDS:
        raise ValueError(f"bad backend '{spec}' (use {', '.join(BACKENDS)})")
    if spec == "torch":
        return spec
    if device.type != "cpu":
        if spec == "onnxruntime":
            raise ValueError("backend 'onnxruntime' runs on the CPU only (use device cpu, or backend torch/auto)")
        return "torch"
    if onnxruntime_available():
        return "onnxruntime"
    if spec == "onnxruntime":
        raise ValueError("backend 'onnxruntime' requested but onnxruntime/onnx are not installed "
                         "(pip install -r requirements.txt, or use backend torch)")
    return "torch"


class Classifier:
    """Face crops -> class probabilities. fp16 torch on CUDA; fp32 ONNX Runtime (or torch) on the CPU.

    The torch model (`self.model`) is always loaded: Grad-CAM needs its gradients whatever the backend.
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "auto", warmup: bool = True,
                 backend: str = "auto"):
        self.device = resolve_device(device)
        self._auto = str(device).strip().lower() == "auto"
        self._backend_spec = backend
        model, self.meta = model_io.load_model(model_path or None, "cpu")
        self.class_names = list(self.meta.class_names)
        self._onnx: OnnxRuntimeRunner | None = None
        if self.device.type == "cuda":
            try:
                self._use(model, self.device)
                self.warmup()  # a broken driver, unsupported GPU or full memory shows up here, at start-up
            except RuntimeError as exc:
                if str(device).strip().lower() != "auto":
                    raise
                log.warning("CUDA failed (%s); falling back to the CPU", exc)
                self._use(model, torch.device("cpu"))
                if warmup:
                    self.warmup()
        else:
            self._use(model, self.device)
            if warmup:
                self.warmup()

    def _use(self, model: torch.nn.Module, device: torch.device) -> None:
        """Put the model on `device`: fp16 on CUDA (tensor cores, half the memory), fp32 on the CPU."""
        self.device = device
        self.dtype = torch.float16 if device.type == "cuda" else torch.float32
        # channels_last: measured 1.2-1.8x faster for EfficientNet-lite0 on this CPU (depthwise convs), and
        # what tensor cores want on CUDA. Results equal the default layout's to ~1e-5.
        self.model = model.to(device=device, dtype=self.dtype, memory_format=torch.channels_last).eval()
        self.backend = resolve_backend(self._backend_spec, device)
        self._onnx = None
        if self.backend == "onnxruntime":
            self._onnx = OnnxRuntimeRunner(self.model, self.meta.input_size, self.meta.in_chans)

    @property
    def model_id(self) -> str:
        return self.meta.model_id

    def warmup(self) -> None:
        """One dummy inference so the first real frame does not pay for lazy initialisation."""
        dummy = np.zeros((self.meta.input_size, self.meta.input_size), np.uint8)
        self.predict(self.to_batch([dummy]))

    def to_gray_batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, S, S) uint8: each crop gray and resized exactly as in training."""
        if not crops:
            return np.empty((0, self.meta.input_size, self.meta.input_size), np.uint8)
        return np.stack([resize_like_training(to_gray(c), self.meta) for c in crops])

    def to_batch(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """Network input (N, C, S, S) on the model's device and dtype."""
        grays = torch.from_numpy(self.to_gray_batch(crops)).to(self.device, non_blocking=True)
        return normalize(grays, self.meta).to(self.dtype).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> np.ndarray:
        """(N, K) float32 softmax probabilities, with the model's calibration temperature applied."""
        if batch.shape[0] == 0:
            return np.empty((0, len(self.class_names)), np.float32)
        if self._onnx is not None:
            return _softmax(self._onnx(batch.numpy()) / self.meta.temperature)
        try:
            logits = self.model(batch)
        except torch.cuda.OutOfMemoryError as exc:
            # Another process took the GPU's memory mid-run: with device 'auto' keep serving on the CPU
            # rather than failing every frame from now on. (Not exercised on CI: it has no GPU.)
            if not (self._auto and self.device.type == "cuda"):
                raise
            log.warning("CUDA out of memory (%s); device 'auto' falls back to the CPU", exc)
            self._use(self.model, torch.device("cpu"))
            torch.cuda.empty_cache()
            logits = self.model(batch.to("cpu", self.dtype).contiguous(memory_format=torch.channels_last))
        return torch.softmax(logits.float() / self.meta.temperature, dim=1).cpu().numpy()

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict(self.to_batch(crops))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
