"""The classifier's forward pass in ONNX Runtime, for the CPU.

Why: at 96 px EfficientNet-lite0 is so small that eager PyTorch spends most of its time in per-operator
overhead (many of its convolutions take the slow im2col path in channels-last). ONNX Runtime fuses
conv+BN+activation and runs the same model several times faster on one CPU core (figures:
docs/performance.md, "Figures that used to sit in docstrings").

The weights stay safetensors + JSON: the ONNX graph is exported from the loaded torch model at start-up, in
memory, so there is never a second weight file that could drift from the first.
The torch model is kept for Grad-CAM, which needs gradients.
"""
from __future__ import annotations

import copy
import io
import logging
import warnings
from typing import Sequence

import numpy as np
import torch


log = logging.getLogger(__name__)
_ASK = object()  # resolve_backend's default: ask onnxruntime which providers it has


def available_providers() -> list[str] | None:
    """ONNX Runtime's execution providers in this install, or None when onnxruntime/onnx do not import."""
    if not onnxruntime_available():
        return None
    import onnxruntime as ort  # optional dependency (see onnxruntime_available): imported only where used

    return list(ort.get_available_providers())


def onnxruntime_providers(device: torch.device, available: Sequence[str] | None) -> list:
    """The providers for a session on `device`: CUDA's (on that GPU, CPU behind it) when the device is CUDA and
    this onnxruntime has it; else the CPU's, logged when CUDA was asked for (the pip `onnxruntime` wheel has no
    CUDA provider; `onnxruntime-gpu` does)."""
    if device.type == "cuda":
        if "CUDAExecutionProvider" in (available or ()):
            return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        log.warning("backend 'onnxruntime' on %s: this onnxruntime has no CUDAExecutionProvider (providers: %s); "
                    "the classifier's ONNX Runtime session runs on the CPU", device, ", ".join(available or ()))
    return ["CPUExecutionProvider"]


def onnxruntime_available() -> bool:
    """True when both onnxruntime (inference) and onnx (needed by torch's exporter) import."""
    try:  # both optional: the classifier falls back to torch without them
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _WithLayer(torch.nn.Module):
    """The model, returning (logits, the output of its module `layer`)."""

    def __init__(self, model: torch.nn.Module, layer: str):
        super().__init__()
        self.model, self._kept = model, None
        model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: setattr(self, "_kept", out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x), self._kept


def export_onnx(model: torch.nn.Module, input_size: int, in_chans: int, keep_layer: str | None = None) -> bytes:
    """The model as an ONNX graph (fp32, input `image`, output `logits`, dynamic batch), exported from a CPU copy
    in memory (the caller's model keeps its device, dtype and memory format). training/export.py writes it to a
    file. `keep_layer`: a module name whose output the graph also returns, as a second output `layer` (the
    explainer reuses it instead of running the layers below again)."""
    cpu_model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format).eval()
    outputs = ["logits"] + (["layer"] if keep_layer else [])
    if keep_layer:
        cpu_model = _WithLayer(cpu_model, keep_layer)
    example = torch.zeros(1, in_chans, input_size, input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(cpu_model, (example,), buffer, dynamo=False, input_names=["image"],
                          output_names=outputs, dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
                          opset_version=17)
    return buffer.getvalue()


class OnnxRuntimeBackend:
    """Callable: (N, C, S, S) batch -> (N, K) float32 logits, with ONNX Runtime (CPU, or CUDA's provider)."""

    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, input_size: int, in_chans: int, threads: int,
                 providers: Sequence | None = None, keep_layer: str | None = None):
        import onnxruntime as ort  # optional dependency (see onnxruntime_available): imported only where used

        options = ort.SessionOptions()
        # Pinned like torch and OpenCV (an oversubscribed 2-core machine made every stage many times slower), and
        # passed in rather than copied from torch.get_num_threads(), which is whatever the process last set.
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        providers = list(providers or ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(export_onnx(model, input_size, in_chans, keep_layer), options,
                                            providers=providers)
        self.layer_output: torch.Tensor | None = None  # keep_layer's output in the last call (fp32, CPU)
        self._input = self.session.get_inputs()[0].name
        wanted = [p[0] if isinstance(p, tuple) else p for p in providers]
        if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in self.session.get_providers():
            # onnxruntime skips a provider it cannot load (e.g. missing CUDA/cuDNN libraries) and says so only in
            # its own log: say it here too
            log.warning("ONNX Runtime could not start its CUDA provider; the classifier runs on the CPU")

    @property
    def threads(self) -> int:
        return self.session.get_session_options().intra_op_num_threads

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        # the graph is fp32; a CUDA fp16 batch comes back to the host first (one copy of N x 96 x 96 values)
        pixels = batch.detach().to("cpu", torch.float32).numpy()
        outputs = self.session.run(None, {self._input: np.ascontiguousarray(pixels)})
        self.layer_output = torch.from_numpy(outputs[1]) if len(outputs) > 1 else None
        return outputs[0]
