"""Grad-CAM (core/explain.py) with the shipped model: the explainer removes the hooks it registers, as
pytorch-grad-cam's own CAM objects do, so a closed explainer leaves no forward hook behind."""
from __future__ import annotations

import pytest
import torch

from emotion_recognition_ros.core.explain import GradCamExplainer
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
import test_cuda_fallbacks

model = test_cuda_fallbacks.model  # the shipped model (a fixture)
_batch = test_cuda_fallbacks._batch  # random network input for it


def _forward_hooks(net: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in net.modules())


def test_close_removes_every_hook_the_explainer_registered(model):
    net, meta = model
    before = _forward_hooks(net)
    explainer = GradCamExplainer(net)
    assert _forward_hooks(explainer.model) >= 3  # ours (the gradient leaf) and Grad-CAM's two
    assert explainer.explain(_batch(meta), [0, 1]).shape == (2, meta.input_size, meta.input_size)
    explainer.close()
    assert _forward_hooks(explainer.model) == 0
    assert _forward_hooks(net) == before  # the classifier's own network was never hooked
    explainer.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        explainer.explain(_batch(meta), [0, 1])


def test_as_a_context_manager_it_removes_its_hooks_on_exit(model):
    net, meta = model
    with GradCamExplainer(net) as explainer:
        maps = explainer.explain(_batch(meta, 1), [2])
    assert maps.shape == (1, meta.input_size, meta.input_size) and maps.max() > 0
    assert _forward_hooks(explainer.model) == 0


def test_closing_the_pipeline_removes_the_explainers_hooks():
    pipeline = EmotionPipeline(PipelineConfig(device="cpu", detector="full_frame"))
    pipeline.warmup(explain=True)
    explained = pipeline._explainer.model
    assert _forward_hooks(explained) >= 3
    pipeline.close()
    assert _forward_hooks(explained) == 0
