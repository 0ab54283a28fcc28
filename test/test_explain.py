"""Heatmaps (core/explain.py) with the shipped model: the registry of CAM methods and layers, the same maps as
pytorch-grad-cam, hooks removed on close, faithfulness against the mean map (the test the old 3x3 Grad-CAM
fails), the model-randomisation sanity check, the pipeline's explain(result, classes), region shares."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from emotion_recognition_ros.core.config import PIPELINE_PARAMETERS
from emotion_recognition_ros.core.data_paths import missing_reason
from emotion_recognition_ros.core.explain import (CAM_METHODS, DEFAULT_LAYER, DEFAULT_METHOD, LEGACY_LAYER,
                                                  LEGACY_METHOD, REGION_NAMES, CamExplainer, region_shares,
                                                  resolve_layer)
from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig
import test_cuda_fallbacks

model = test_cuda_fallbacks.model  # the shipped model (a fixture)
_batch = test_cuda_fallbacks._batch  # random network input for it


def _forward_hooks(net: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in net.modules())


def test_close_removes_every_hook_the_explainer_registered(model):
    net, meta = model
    before = _forward_hooks(net)
    explainer = CamExplainer(net)
    assert _forward_hooks(explainer.model) == 1  # the gradient leaf at the explained layer
    assert explainer.explain(_batch(meta), [0, 1]).shape == (2, meta.input_size, meta.input_size)
    explainer.close()
    assert _forward_hooks(explainer.model) == 0
    assert _forward_hooks(net) == before  # the classifier's own network was never hooked
    explainer.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        explainer.explain(_batch(meta), [0, 1])


def test_as_a_context_manager_it_removes_its_hooks_on_exit(model):
    net, meta = model
    with CamExplainer(net) as explainer:
        maps = explainer.explain(_batch(meta, 1), [2])
    assert maps.shape == (1, meta.input_size, meta.input_size) and maps.max() > 0
    assert _forward_hooks(explainer.model) == 0


def test_closing_the_pipeline_removes_the_explainers_hooks():
    pipeline = EmotionPipeline(PipelineConfig(device="cpu", detector="full_frame"))
    pipeline.warmup(explain=True)
    explained = pipeline._explainer.model
    assert _forward_hooks(explained) == 1
    pipeline.close()
    assert _forward_hooks(explained) == 0


def test_bad_method_or_layer_is_refused_with_the_valid_names(model):
    net, _ = model
    with pytest.raises(ValueError, match="gradcam, hirescam, layercam, gradcam\\+\\+"):
        CamExplainer(net, "scorecam")
    with pytest.raises(ValueError, match="stride8.*blocks.2.*conv_head"):
        CamExplainer(net, "hirescam", "blocks.99")
    with pytest.raises(ValueError, match="explain_method must be one of: gradcam, hirescam"):
        EmotionPipeline(PipelineConfig(device="cpu", detector="full_frame", explain_method="saliency"))
    with pytest.raises(ValueError, match="explain_layer must be one of"):
        EmotionPipeline(PipelineConfig(device="cpu", detector="full_frame", explain_layer="head"))
    # the settings table and the registry list the same methods, and the defaults are the registry's
    assert PIPELINE_PARAMETERS["explain_method"].choices == tuple(CAM_METHODS)
    assert (PIPELINE_PARAMETERS["explain_method"].default, PIPELINE_PARAMETERS["explain_layer"].default) == (
        DEFAULT_METHOD, DEFAULT_LAYER)
    assert resolve_layer(net, "stride8")[0] == "blocks.2" and resolve_layer(net, "stride32")[0] == "blocks.6"


@pytest.mark.parametrize("method,layer", [("gradcam", "conv_head"), ("hirescam", "blocks.2"),
                                          ("layercam", "blocks.4"), ("gradcam++", "blocks.2")])
def test_maps_equal_pytorch_grad_cams_with_no_weight_gradients(model, method, layer):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    reference_cls = {"gradcam": GradCAM, "hirescam": HiResCAM, "layercam": LayerCAM, "gradcam++": GradCAMPlusPlus}
    net, meta = model
    batch, classes = _batch(meta, 3, seed=1), [0, 2, 4]
    with CamExplainer(net, method, layer, normalise="minmax") as explainer:
        maps = explainer.explain(batch, classes)
        assert all(p.grad is None and not p.requires_grad for p in explainer.model.parameters())
    reference = copy.deepcopy(net).float().eval()
    with torch.enable_grad():
        expected = reference_cls[method](model=reference, target_layers=[reference.get_submodule(layer)])(
            input_tensor=batch, targets=[ClassifierOutputTarget(c) for c in classes])
    np.testing.assert_allclose(maps, np.nan_to_num(expected), atol=1e-4)
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("backend,method,layer", [("onnxruntime", "hirescam", "blocks.2"),
                                                  ("onnxruntime", "layercam", "blocks.4"),
                                                  ("torch", "gradcam++", "blocks.2")])
def test_maps_from_the_classifiers_own_activations_equal_pytorch_grad_cams(model, backend, method, layer):
    """The node's path: the classifier keeps the explained layer's output, the explainer runs only the layers
    above it (autograd the first time, then the ONNX Runtime gradient program, once it matched autograd)."""
    from pytorch_grad_cam import GradCAMPlusPlus, HiResCAM, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from emotion_recognition_ros.core.classifier import Classifier

    net, meta = model
    batch, classes = _batch(meta, 3, seed=1), [0, 2, 4]
    classifier = Classifier(None, "cpu", backend=backend, keep_layer=layer)
    classifier.predict(batch)
    kept = classifier.layer_output
    assert kept is not None and kept[0] == layer and kept[1].shape[0] == 3
    with CamExplainer(classifier.model, method, layer, normalise="minmax") as explainer:
        assert _forward_hooks(explainer.model) == 1  # the classifier's keep hook is not copied into it
        first = explainer.explain(batch, classes, kept)
        assert explainer._ort is not None  # the gradient program matched autograd on these activations
        again = explainer.explain(batch, classes, kept)
    reference = copy.deepcopy(net).float().eval()
    cls = {"hirescam": HiResCAM, "layercam": LayerCAM, "gradcam++": GradCAMPlusPlus}[method]
    with torch.enable_grad():
        expected = np.nan_to_num(cls(model=reference, target_layers=[reference.get_submodule(layer)])(
            input_tensor=batch, targets=[ClassifierOutputTarget(c) for c in classes]))
    np.testing.assert_allclose(first, expected, atol=1e-4)
    np.testing.assert_allclose(again, expected, atol=1e-4)


def _ferplus_faces(count: int):
    from benchmarks.explain_quality import DATA, load_faces

    images, _, _ = load_faces(DATA / "FER2013Valid", count)
    return images


@pytest.fixture(scope="module")
def valid_faces():
    if reason := missing_reason("ferplus"):
        pytest.skip(reason)
    from emotion_recognition_ros.core.classifier import Classifier

    classifier = Classifier(None, "cpu", backend="onnxruntime", threads=1)
    batch = classifier.to_batch(_ferplus_faces(60)).float()
    return classifier, batch, classifier.predict(batch).argmax(1)


def _morf20_gain_over_mean_map(classifier, batch, classes, method: str, layer: str) -> float:
    """How much more blurring the 20% most salient pixels (by each face's own map) lowers p(class) than by the
    set's mean map (benchmarks/explain_quality.py's MoRF-20 with blur imputation)."""
    from benchmarks.explain_quality import Scorer, ranks

    with CamExplainer(classifier.model, method, layer) as explainer:
        maps = explainer.explain(batch, classes.tolist())
    scorer = Scorer(classifier, batch, classes)
    own = scorer._masked(ranks(maps), 0.2, batch, scorer.blur)
    mean = scorer._masked(ranks(np.repeat(maps.mean(0, keepdims=True), len(maps), 0)), 0.2, batch, scorer.blur)
    return float(np.mean(scorer.p(mean) - scorer.p(own)))


def test_the_default_map_beats_the_face_sets_mean_map_and_the_old_one_does_not(valid_faces):
    """Issue 27: the old map (Grad-CAM at conv_head, 3x3) told less about a face than a fixed prior did."""
    classifier, batch, classes = valid_faces
    assert _morf20_gain_over_mean_map(classifier, batch, classes, DEFAULT_METHOD, DEFAULT_LAYER) >= 0.05
    assert _morf20_gain_over_mean_map(classifier, batch, classes, LEGACY_METHOD, LEGACY_LAYER) < 0.05


def test_randomising_the_head_changes_the_default_maps(valid_faces):
    """Adebayo et al.'s model-randomisation check on 16 faces: re-initialised head, maps no longer alike."""
    from benchmarks.explain_quality import sanity

    classifier, batch, classes = valid_faces
    batch, classes = batch[:16], classes[:16]
    with CamExplainer(classifier.model) as explainer:
        reference = explainer.explain(batch, classes.tolist())
    corr = sanity(classifier.model, DEFAULT_METHOD, DEFAULT_LAYER, batch, classes, reference)
    assert corr["head"] < 0.5 and corr["+blocks.6"] < 0.5, corr


def test_pipeline_explains_any_class_by_index_or_name():
    pipeline = EmotionPipeline(PipelineConfig(device="cpu", detector="full_frame", threads=1))
    try:
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 255, (96, 96, 3), np.uint8)
        result = pipeline.process(frame, explain=True)
        assert len(result.faces) == 1 and result.heatmaps.shape == (1, 96, 96)
        assert result.heatmap_classes == [int(np.argmax(result.faces[0].raw_scores))]  # this frame's label
        sad = pipeline.explain(result, "sadness")
        assert result.heatmap_classes == [pipeline.class_names.index("sadness")]
        np.testing.assert_allclose(pipeline.explain(result, [3]), sad, atol=1e-6)
        with pytest.raises(ValueError, match="unknown class 'sad'"):
            pipeline.explain(result, "sad")
        with pytest.raises(ValueError, match="2 classes for 1 faces"):
            pipeline.explain(result, [0, 1])
        pipeline.reconfigure(explain_method="gradcam", explain_layer="conv_head")
        old = pipeline.explain(result, [3])
        assert pipeline._explainer.layer == "conv_head" and not np.allclose(old, sad, atol=1e-3)
        with pytest.raises(ValueError, match="explain_layer must be one of"):
            pipeline.reconfigure(explain_layer="blocks.42")
    finally:
        pipeline.close()


def test_region_shares_follow_the_landmarks():
    # a level 96 px crop; landmarks: eyes at y 38, nose at 55, mouth corners at y 72
    landmarks = np.array([[30, 38], [66, 38], [48, 55], [34, 72], [62, 72]], np.float32)
    box = (0.0, 0.0, 96.0, 96.0)
    heat = np.zeros((96, 96), np.float32)
    heat[70:76, 40:56] = 1.0  # between the mouth corners
    shares = region_shares(heat, landmarks, box)
    assert shares.sum() == pytest.approx(1.0) and REGION_NAMES[int(np.argmax(shares))] == "mouth"
    heat[:] = 0
    heat[30:36, 25:35] = 1.0  # above the left eye: a brow
    assert REGION_NAMES[int(np.argmax(region_shares(heat, landmarks, box)))] == "eyes_brows"
    # the same face in a frame, its box elsewhere and twice the size: the same shares
    # (the map is on the crop's own grid, whatever the box's size in the frame)
    shifted = region_shares(heat, landmarks * 2 + (100, 50), (100.0, 50.0, 192.0, 192.0))
    np.testing.assert_allclose(shifted, region_shares(heat, landmarks, box), atol=0.02)
    assert region_shares(heat, np.empty((0, 2)), box) is None  # no landmarks: no shares
    assert region_shares(np.zeros((96, 96)), landmarks, box).tolist() == [0.0] * 4

