"""The classifier's forward pass in PyTorch: fp16 on CUDA, fp32 channels-last on the CPU."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..device import inference_dtype

log = logging.getLogger(__name__)


class TorchBackend:
    """Callable: (N, C, S, S) batch on `device` -> (N, K) float32 logits.

    `cpu_fallback`: on CUDA out-of-memory, move to the CPU and keep serving (device 'auto') instead of failing
    every frame from then on. (Not exercised on CI: it has no GPU.)
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device, cpu_fallback: bool = False,
                 keep_layer: str | None = None):
        self.cpu_fallback = cpu_fallback
        self.layer_output: torch.Tensor | None = None  # keep_layer's output in the last call (fp32 only)
        self._hook = None
        if keep_layer:  # a reference, not a copy; fp16 (CUDA) outputs are not kept: the explainer works in fp32
            def keep(_module, _inputs, output) -> None:
                if isinstance(output, torch.Tensor) and output.dtype == torch.float32:
                    self.layer_output = output
            keep.keeps_layer_output = True  # a function, which deepcopy shares: copies of the model drop it
            self._hook = model.get_submodule(keep_layer).register_forward_hook(keep)
        self.place(model, device)

    def release(self) -> None:
        """Remove the keep_layer hook (the model is handed to another backend object)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def place(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.dtype = inference_dtype(device)
        # channels_last: faster for EfficientNet-lite0's depthwise convs on the CPU (docs/performance.md), and
        # what tensor cores want on CUDA. Results equal the default layout's to ~1e-5.
        self.model = model.to(device=device, dtype=self.dtype, memory_format=torch.channels_last).eval()

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        try:
            return self._forward(batch)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            if not (self.cpu_fallback and self.device.type == "cuda" and is_cuda_out_of_memory(exc)):
                raise
            log.warning("CUDA out of memory (%s); device 'auto' falls back to the CPU", exc)
        # Outside inference mode (the forward's): parameters moved inside it would become inference tensors,
        # which Grad-CAM's copy of the model can no longer differentiate.
        self.place(self.model, torch.device("cpu"))
        torch.cuda.empty_cache()
        return self._forward(batch.to("cpu", self.dtype).contiguous(memory_format=torch.channels_last))

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        self.layer_output = None
        return self.model(batch).float().cpu().numpy()


# What CUDA's allocators say when memory runs out: torch's own error, and cuBLAS/cuDNN failing to get workspace,
# which reach Python as a plain RuntimeError.
_OUT_OF_MEMORY_MARKS = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_MEMORY",
                        "CUDNN_STATUS_ALLOC_FAILED")


def is_cuda_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA running out of memory, in any of the forms torch raises it."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(mark in str(exc) for mark in _OUT_OF_MEMORY_MARKS)
