"""Device, dtype and thread policy, shared by the node's classifier and by training."""
from __future__ import annotations

import logging

import cv2
import torch

log = logging.getLogger(__name__)

DEVICE_HELP = "use auto, cpu, cuda or cuda:N"


def validate_device_spec(spec: str) -> str | None:
    """None if `spec` is syntactically a device name, else the reason (no CUDA probing)."""
    spec = (spec or "").strip().lower()
    if spec in ("auto", "cpu", "cuda"):
        return None
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return None
    return f"bad device '{spec}' ({DEVICE_HELP})"


def resolve_device(spec: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a usable torch.device. 'auto' falls back to CPU (with a
    warning) when CUDA is missing; an explicit CUDA device that does not exist is an error."""
    spec = (spec or "auto").strip().lower()
    if reason := validate_device_spec(spec):
        raise ValueError(reason)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        log.warning("device 'auto': CUDA is not available, running on the CPU")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device '{spec}' requested but CUDA is not available (use 'auto' or 'cpu')")
    index = torch.device(spec).index or 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"device '{spec}': only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device("cuda", index)


def inference_dtype(device: torch.device) -> torch.dtype:
    """fp16 on CUDA (tensor cores, half the memory), fp32 on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read afterwards times it (CUDA runs asynchronously:
    without this a stage's time would be its launch time and the next stage would pay for it). No-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_threads(n: int) -> None:
    """Pin torch's and OpenCV's intra-op threads. ONNX Runtime sessions take their count explicitly
    (PipelineConfig.threads), never copied from torch: oversubscribed threads make every stage many times
    slower on a loaded machine (docs/performance.md)."""
    torch.set_num_threads(int(n))
    cv2.setNumThreads(int(n))
