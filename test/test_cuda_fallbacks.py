"""The CUDA path's decisions and fallbacks, checked on the CPU (issue 15): what resolves with CUDA reported
present, the out-of-memory fallback, Grad-CAM's gradients, and the stage clock. test/cuda/ runs them on a GPU."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from emotion_recognition_ros.core import device as device_module
from emotion_recognition_ros.core import model_io
from emotion_recognition_ros.core.classifier import Classifier, resolve_backend
from emotion_recognition_ros.core.classifier import classifier as classifier_module
from emotion_recognition_ros.core.classifier.classifier import cuda_start_errors
from emotion_recognition_ros.core.classifier.onnx_runtime import onnxruntime_providers
from emotion_recognition_ros.core.classifier.torch_backend import TorchBackend, is_cuda_out_of_memory
from emotion_recognition_ros.core.explain import EXPLAIN_DTYPE, GradCamExplainer

CUDA0 = torch.device("cuda", 0)


@pytest.fixture
def cuda_reported(monkeypatch):
    """This torch says a GPU is present (nothing is run on it: only the resolution logic is exercised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.fixture(scope="module")
def model():
    loaded, meta = model_io.load_model(None, "cpu")
    return loaded.eval(), meta


def _batch(meta, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(n, meta.in_chans, meta.input_size, meta.input_size)).astype(np.float32))


def test_auto_device_with_the_onnxruntime_backend_resolves_on_a_cuda_host(cuda_reported):
    device = device_module.resolve_device("auto")
    assert device == CUDA0
    assert resolve_backend("onnxruntime", device) == "onnxruntime"  # was: ValueError "runs on the CPU only"
    assert resolve_backend("auto", device) == "torch"


def test_onnxruntime_providers_follow_the_device_and_what_is_installed(caplog):
    with_cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnxruntime_providers(torch.device("cuda", 1), with_cuda) == [
        ("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert onnxruntime_providers(torch.device("cpu"), with_cuda) == ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        assert onnxruntime_providers(CUDA0, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert "no CUDAExecutionProvider" in caplog.text


def test_the_backend_is_resolved_before_the_model_moves_to_cuda(cuda_reported, monkeypatch):
    """An impossible backend is refused with its reason, before the model is moved anywhere (on this CPU-only
    torch, moving it to CUDA would raise torch's own 'not compiled with CUDA' instead)."""
    monkeypatch.setattr(classifier_module, "available_providers", lambda: None)  # no onnxruntime installed
    with pytest.raises(ValueError, match="backend 'onnxruntime' requested but onnxruntime/onnx are not installed"):
        Classifier(None, "cuda", backend="onnxruntime", warmup=False)


def test_cuda_start_up_fallback_catches_onnxruntime_errors_too():
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    errors = cuda_start_errors()
    assert issubclass(ort_state.Fail, errors) and issubclass(ort_state.RuntimeException, errors)
    assert issubclass(torch.cuda.OutOfMemoryError, errors) and issubclass(ValueError, errors)


def test_out_of_memory_is_recognised_in_the_forms_cuda_raises_it():
    assert is_cuda_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_cuda_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert is_cuda_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_MEMORY"))
    assert not is_cuda_out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_cuda_out_of_memory(ValueError("out of memory"))


def _as_if_on_cuda(model, meta):
    """A TorchBackend in the state it has on CUDA (fp16 weights, device cuda, fallback on), whose next forward
    runs out of memory once. The weights stay in host memory: only the fallback's own work is real."""
    import copy

    backend = TorchBackend(copy.deepcopy(model), torch.device("cpu"), cpu_fallback=True)
    backend.model.half()
    backend.device, backend.dtype = CUDA0, torch.float16
    raised = []

    def out_of_memory_once(_module, _inputs):
        if not raised:
            raised.append(True)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    backend.model.register_forward_pre_hook(out_of_memory_once)
    return backend


def test_out_of_memory_fallback_leaves_parameters_usable_by_grad_cam(model):
    net, meta = model
    backend = _as_if_on_cuda(net, meta)
    logits = backend(_batch(meta).half())
    assert logits.shape == (2, len(meta.class_names)) and np.isfinite(logits).all()
    assert backend.device.type == "cpu" and backend.dtype == torch.float32
    assert not any(p.is_inference() for p in backend.model.parameters())  # moved outside inference mode
    maps = GradCamExplainer(backend.model).explain(_batch(meta), [0, 1])
    assert maps.shape == (2, meta.input_size, meta.input_size) and maps.max() > 0


def test_other_cuda_errors_are_not_swallowed(model):
    net, meta = model
    backend = _as_if_on_cuda(net, meta)
    backend.model.register_forward_pre_hook(lambda *_: (_ for _ in ()).throw(RuntimeError("illegal memory access")))
    with pytest.raises((RuntimeError, torch.cuda.OutOfMemoryError)):
        backend(_batch(meta).half())
    backend = _as_if_on_cuda(net, meta)
    backend.cpu_fallback = False  # an explicit device: out of memory is the user's to see
    with pytest.raises(torch.cuda.OutOfMemoryError):
        backend(_batch(meta).half())


def test_grad_cam_computes_no_weight_gradients_and_matches_the_full_backward(model):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from emotion_recognition_ros.core.explain import last_conv_layer

    net, meta = model
    explainer = GradCamExplainer(net, "gradcam", "conv_head", normalise="minmax")  # pytorch-grad-cam's scaling
    batch = _batch(meta, 3, seed=1)
    maps = explainer.explain(batch, [0, 2, 4])
    assert all(p.grad is None and not p.requires_grad for p in explainer.model.parameters())
    assert all(p.grad is None for p in net.parameters())
    # the old way (every weight requiring a gradient, backward through the whole network) gives the same maps
    import copy

    reference = copy.deepcopy(net).float().eval()
    for p in reference.parameters():
        p.requires_grad_(True)
    with torch.enable_grad():
        expected = GradCAM(model=reference, target_layers=[last_conv_layer(reference)])(
            input_tensor=batch, targets=[ClassifierOutputTarget(c) for c in (0, 2, 4)])
    np.testing.assert_allclose(maps, np.nan_to_num(expected), atol=1e-4)


def test_grad_cam_runs_in_the_dtype_the_docs_state(model):
    from pathlib import Path

    net, meta = model
    explainer = GradCamExplainer(net.half())  # the classifier's fp16 weights, as on CUDA
    net.float()
    assert {p.dtype for p in explainer.model.parameters()} == {EXPLAIN_DTYPE} == {torch.float32}
    node_md = (Path(__file__).resolve().parents[1] / "docs" / "node.md").read_text()
    assert "Grad-CAM runs in **fp32**" in node_md


def test_synchronize_waits_for_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    device_module.synchronize(torch.device("cpu"))
    assert calls == []
    device_module.synchronize(torch.device("cuda", 1))
    assert calls == [torch.device("cuda", 1)]


def test_stage_clock_synchronises_the_classifier_device_at_every_stage(monkeypatch, faces):
    from emotion_recognition_ros.core import pipeline as pipeline_module
    from emotion_recognition_ros.media.scenes import make_scene

    pipe = pipeline_module.load_pipeline(device="cpu")
    calls = []
    monkeypatch.setattr(pipeline_module, "synchronize", calls.append)
    result = pipe.process(make_scene([faces[0]], 640, 480, rng=3).frame, explain=True)
    assert len(result.faces) == 1
    assert calls == [pipe.classifier.device] * 5  # start, detect, preprocess, classify, explain
