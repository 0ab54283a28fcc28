"""The classifier's two CPU backends (ONNX Runtime, eager torch) on the shipped ckplus6 model: any faces for their
agreement, its CK+ training faces for its accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotion_recognition_ros.core.classifier import Classifier, resolve_backend


@pytest.fixture(scope="module")
def crops(faces):
    picks = [faces[i] for i in range(0, len(faces), max(1, len(faces) // 12))][:12]
    return [f.image for f in picks], [f.label for f in picks]


@pytest.fixture(scope="module")
def classifiers():
    return Classifier("ckplus6", "cpu", backend="onnxruntime"), Classifier("ckplus6", "cpu", backend="torch")


def test_auto_picks_onnxruntime_on_the_cpu_and_torch_elsewhere():
    assert resolve_backend("auto", torch.device("cpu")) == "onnxruntime"
    assert resolve_backend("auto", torch.device("cuda", 0)) == "torch"  # resolves the name only, runs nothing
    assert resolve_backend("TORCH", torch.device("cpu")) == "torch"


def test_bad_backends_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="bad backend 'tensorrt'.*auto, torch, onnxruntime"):
        resolve_backend("tensorrt", torch.device("cpu"))
    with pytest.raises(ValueError, match="onnxruntime/onnx are not installed"):
        resolve_backend("onnxruntime", torch.device("cpu"), providers=None)


def test_onnxruntime_and_torch_give_the_same_probabilities(classifiers, crops):
    images, _ = crops
    ort_model, torch_model = classifiers
    assert (ort_model.backend, torch_model.backend) == ("onnxruntime", "torch")
    a, b = ort_model.classify(images), torch_model.classify(images)
    assert a.shape == (len(images), len(ort_model.class_names)) == (len(images), 6) and a.dtype == np.float32
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-4)
    names = ort_model.class_names
    assert [names[i] for i in a.argmax(axis=1)] == [names[i] for i in b.argmax(axis=1)]


def test_the_exported_model_is_right_on_its_training_faces(classifiers, labelled_faces):
    # CK+ faces, the ckplus6 model's training faces: nearly all must be right, or the export broke something.
    picks = labelled_faces[::max(1, len(labelled_faces) // 12)][:12]
    ort_model, _ = classifiers
    names = ort_model.class_names
    predicted = ort_model.classify([f.image for f in picks]).argmax(axis=1)
    assert np.mean([names[i] == f.label for i, f in zip(predicted, picks)]) >= 0.9


def test_batches_of_any_size_including_none(classifiers, crops):
    ort_model, _ = classifiers
    images, _ = crops
    assert ort_model.classify([]).shape == (0, len(ort_model.class_names))
    one = ort_model.classify(images[:1])
    many = ort_model.classify(images[:7])
    np.testing.assert_allclose(one[0], many[0], atol=1e-5)  # a face's answer does not depend on its batch


def test_grad_cam_still_has_the_torch_model_with_onnxruntime(classifiers, crops):
    from emotion_recognition_ros.core.explain import GradCamExplainer

    ort_model, _ = classifiers
    batch = ort_model.to_batch(crops[0][:2])
    # For each face's own label, as the node explains it: a class the face shows no evidence of can have an
    # all-zero map (Grad-CAM keeps only positive evidence), e.g. anger on the astronaut's smile.
    labels = [int(k) for k in ort_model.predict(batch).argmax(1)]
    maps = GradCamExplainer(ort_model.model).explain(batch, labels)
    assert maps.shape == (2, ort_model.meta.input_size, ort_model.meta.input_size)
    assert np.isfinite(maps).all() and maps.max() > 0


def test_onnxruntime_threads_come_from_the_config_not_from_torch():
    """A pipeline built outside the node used to give ONNX Runtime torch.get_num_threads() (all cores)."""
    from emotion_recognition_ros.core.pipeline import EmotionPipeline, PipelineConfig

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pipeline = EmotionPipeline(PipelineConfig(device="cpu", backend="onnxruntime", threads=1))
        assert pipeline.classifier._run.threads == 1
        assert Classifier(None, "cpu", backend="onnxruntime", threads=2)._run.threads == 2
    finally:
        torch.set_num_threads(before)
