"""The expression classifier: loads a safetensors+JSON model once, classifies all faces of a frame as one batch.

Preprocessing is core/preprocess.py's (the same code training evaluation uses); only the final normalisation
runs on the model's device, so on CUDA the tensor math happens on the GPU in fp16. Inference runs in one of two
backends behind the same call, `backend(batch) -> logits`: TorchBackend or OnnxRuntimeBackend.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import model_io
from ..config import BACKENDS
from ..device import resolve_device
from ..explain import resolve_layer
from ..prior_correction import prior_log_offset
from ..preprocess import gray_batch, normalize
from .onnx_runtime import _ASK, OnnxRuntimeBackend, available_providers, onnxruntime_providers
from .torch_backend import TorchBackend

log = logging.getLogger(__name__)


def resolve_backend(spec: str, device: torch.device, providers: Sequence[str] | None | object = _ASK) -> str:
    """'auto' -> ONNX Runtime on the CPU when it is installed, else torch; torch on CUDA (fp16).
    An explicit 'onnxruntime' that cannot run is an error rather than a silent fallback; on CUDA it runs with
    ONNX Runtime's CUDA provider, or on the CPU when that provider is missing (`onnxruntime_providers`).
    `providers`: ONNX Runtime's available providers (None: onnxruntime/onnx not installed; default: ask it)."""
    spec = (spec or "auto").strip().lower()
    if spec not in BACKENDS:
        raise ValueError(f"bad backend '{spec}' (use {', '.join(BACKENDS)})")
    if spec == "torch" or (spec == "auto" and device.type != "cpu"):
        return "torch"
    installed = (available_providers() if providers is _ASK else providers) is not None
    if installed:
        return "onnxruntime"
    if spec == "onnxruntime":
        raise ValueError("backend 'onnxruntime' requested but onnxruntime/onnx are not installed "
                         "(pip install -r requirements.txt, or use backend torch)")
    return "torch"


# Errors that mean "CUDA cannot run this here" (driver, unsupported GPU, memory, missing CUDA libraries of ONNX
# Runtime): with device 'auto' the classifier then starts on the CPU. ONNX Runtime's own errors derive from
# Exception only, so they are named as such.
def cuda_start_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError, OSError)
    try:  # onnxruntime is optional (the torch backend runs without it): imported where it is used
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
    except ImportError:
        return errors
    return errors + (ort_state.Fail, ort_state.RuntimeException, ort_state.EPFail)


class Classifier:
    """Face crops -> class probabilities. fp16 torch on CUDA; fp32 ONNX Runtime (or torch) on the CPU.

    The torch model (`self.model`) is always loaded: Grad-CAM needs its gradients whatever the backend.
    `threads` is ONNX Runtime's session thread count (torch's is process-wide: core.device.set_threads).
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "auto", warmup: bool = True,
                 backend: str = "auto", threads: int = 1, keep_layer: str | None = None):
        self._auto = str(device).strip().lower() == "auto"
        self._backend_spec = backend
        self._threads = threads
        model, self.meta = model_io.load_model(model_path or None, "cpu")
        # keep_layer (a layer name or stride, as explain_layer): each predict also keeps that layer's output
        # (layer_output), which the explainer reuses instead of running the layers below it again
        self.kept_layer = resolve_layer(model, keep_layer)[0] if keep_layer else None
        self.class_names = list(self.meta.class_names)
        self.prior_correction = 0.0
        target = resolve_device(device)
        if target.type == "cuda":
            self._start_on_cuda(model, target, warmup)
        else:
            self._use(model, target)
            if warmup:
                self.warmup()

    def _start_on_cuda(self, model: torch.nn.Module, device: torch.device, warmup: bool) -> None:
        try:
            self._use(model, device)
            self.warmup()  # a broken driver, unsupported GPU or full memory shows up here, at start-up
        except cuda_start_errors() as exc:
            if not self._auto:
                raise
            log.warning("CUDA failed (%s); falling back to the CPU", exc)
            self._use(model, torch.device("cpu"))
            if warmup:
                self.warmup()

    def _use(self, model: torch.nn.Module, device: torch.device) -> None:
        # The backend first: a configuration that cannot run must fail before the model is moved anywhere.
        self.backend = resolve_backend(self._backend_spec, device)
        if getattr(self, "_torch", None) is not None:  # a second start (CUDA failed): one hook on the model
            self._torch.release()
        self._torch = TorchBackend(model, device, cpu_fallback=self._auto,
                                   keep_layer=self.kept_layer if self.backend == "torch" else None)
        self._run = self._torch
        if self.backend == "onnxruntime":
            providers = onnxruntime_providers(device, available_providers())
            self._run = OnnxRuntimeBackend(self.model, self.meta.input_size, self.meta.in_chans, self._threads,
                                           providers, self.kept_layer)

    @property
    def model(self) -> torch.nn.Module:
        return self._torch.model

    @property
    def layer_output(self) -> tuple[str, torch.Tensor] | None:
        """(kept_layer, its output) from the last predict, where the backend ran it in fp32 (any ONNX Runtime
        session, torch on the CPU); None otherwise."""
        out = getattr(self._run, "layer_output", None)
        return None if out is None or self.kept_layer is None else (self.kept_layer, out)

    @property
    def device(self) -> torch.device:
        return self._torch.device

    @property
    def dtype(self) -> torch.dtype:
        return self._torch.dtype

    @property
    def model_id(self) -> str:
        return self.meta.model_id

    @property
    def prior_correction(self) -> float:
        """The operating point (core/prior_correction.py): 0 = the training prior, 1 = class-balanced."""
        return self._prior_correction

    @prior_correction.setter
    def prior_correction(self, value: float) -> None:
        if value and self.meta.class_prior is None:
            log.warning("model %s has no class_prior in its JSON: prior_correction %.2f has no effect",
                        self.model_id, value)
        self._prior_correction = float(value)
        self._log_offset = prior_log_offset(self.meta.class_prior, self._prior_correction, len(self.class_names))

    def warmup(self) -> None:
        """One dummy inference so the first real frame does not pay for lazy initialisation."""
        dummy = np.zeros((self.meta.input_size, self.meta.input_size), np.uint8)
        self.predict(self.to_batch([dummy]))

    def to_batch(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """Network input (N, C, S, S) on the model's device and dtype."""
        grays = torch.from_numpy(gray_batch(crops, self.meta)).to(self.device, non_blocking=True)
        return normalize(grays, self.meta).to(self.dtype).contiguous(memory_format=torch.channels_last)

    def predict(self, batch: torch.Tensor) -> np.ndarray:
        """(N, K) float32 softmax probabilities: the model's calibration temperature, then the operating point."""
        if batch.shape[0] == 0:
            return np.empty((0, len(self.class_names)), np.float32)
        return softmax(self._run(batch) / self.meta.temperature - self._log_offset)

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict(self.to_batch(crops))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
