"""Issue 15's CUDA defects on a real GPU (skipped without one). The CPU halves: test/test_cuda_fallbacks.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")


def _crops(n=2):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (96, 96), dtype=np.uint8) for _ in range(n)]


def test_auto_device_with_the_onnxruntime_backend_starts_and_classifies():
    from emotion_recognition_ros.core.classifier import Classifier

    classifier = Classifier(None, "auto", backend="onnxruntime")
    assert classifier.backend == "onnxruntime" and classifier.device.type == "cuda"
    probs = classifier.classify(_crops())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    reference = Classifier(None, "cpu", backend="torch").classify(_crops())
    np.testing.assert_allclose(probs, reference, atol=2e-2)  # CUDA/CPU providers on the same fp32 graph


def test_grad_cam_on_cuda_runs_on_its_own_stream_without_weight_gradients():
    from emotion_recognition_ros.core.classifier import Classifier
    from emotion_recognition_ros.core.explain import GradCamExplainer

    classifier = Classifier(None, "cuda", backend="torch")
    explainer = GradCamExplainer(classifier.model)
    streams = []
    explainer.model.register_forward_pre_hook(lambda *_: streams.append(torch.cuda.current_stream()))
    maps = explainer.explain(classifier.to_batch(_crops()), [0, 1])
    assert maps.shape == (2, 96, 96) and np.isfinite(maps).all()
    assert streams and all(s == explainer.stream for s in streams)
    assert explainer.stream != torch.cuda.default_stream(classifier.device)
    assert all(p.grad is None and not p.requires_grad for p in explainer.model.parameters())
    assert all(p.dtype == torch.float32 for p in explainer.model.parameters())


def test_stage_timings_on_cuda_add_up_to_the_frame():
    import time

    from emotion_recognition_ros.core.pipeline import load_pipeline

    pipe = load_pipeline(device="cuda", detector="full_frame")
    frame = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pipe.process(frame)
    t = time.perf_counter()
    result = pipe.process(frame)
    torch.cuda.synchronize()
    wall = time.perf_counter() - t
    stages = sum(result.timings[s] for s in ("detect", "preprocess", "classify"))
    assert 0.5 * wall <= stages <= wall
