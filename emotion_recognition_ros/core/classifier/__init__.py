"""Face crops -> class probabilities, with the torch or the ONNX Runtime backend behind one interface."""
from .classifier import Classifier, resolve_backend
from .onnx_runtime import OnnxRuntimeBackend, export_onnx, onnxruntime_available
from .torch_backend import TorchBackend

__all__ = ["Classifier", "OnnxRuntimeBackend", "TorchBackend", "export_onnx", "onnxruntime_available",
           "resolve_backend"]
