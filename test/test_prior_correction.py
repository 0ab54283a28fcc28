"""The operating point (`prior_correction`): the logit adjustment, the node's classifier applying it, the model
JSON's class_prior, and the sweep that chooses the default on validation data.

Real parts: the shipped default model and its class_prior; faces from a generated FER+-layout split.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotion_recognition_ros.core.classifier import Classifier
from emotion_recognition_ros.core.config import PipelineConfig
from emotion_recognition_ros.core.model_io import ModelLoadError, ModelMetadata, read_metadata, resolve_model
from emotion_recognition_ros.core.prior_correction import adjust_log_probs, class_frequencies
from emotion_recognition_ros.core.pipeline import EmotionPipeline
from ferplus_fixture import write_split
from training.prior_correction_sweep import choose, main as sweep_main


@pytest.fixture(scope="module")
def face_crop() -> np.ndarray:
    """The face of scikit-image's astronaut photo (installed with the package's dependencies: any clone has it)."""
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[20:140, 160:280, ::-1])


def test_strength_zero_is_the_trained_prior_and_one_divides_the_prior_out():
    rng = np.random.default_rng(0)
    log_probs = np.log(rng.dirichlet(np.ones(4), size=5))
    prior = [0.7, 0.2, 0.05, 0.05]
    np.testing.assert_allclose(adjust_log_probs(log_probs, prior, 0.0), np.exp(log_probs), atol=1e-12)
    balanced = np.exp(log_probs) / np.array(prior)
    np.testing.assert_allclose(adjust_log_probs(log_probs, prior, 1.0), balanced / balanced.sum(1, keepdims=True))
    halfway = adjust_log_probs(log_probs, prior, 0.5)
    assert (halfway[:, 0] < np.exp(log_probs)[:, 0]).all()  # the most frequent class loses mass
    assert (halfway[:, 2] > np.exp(log_probs)[:, 2]).all()  # a rare one gains it


def test_class_frequencies_never_give_a_class_zero():
    prior = class_frequencies([0, 0, 0, 1], 3)
    assert len(prior) == 3 and all(p > 0 for p in prior) and prior[0] > prior[1] >= prior[2]


def test_the_node_classifier_applies_the_shipped_models_prior(face_crop):
    classifier = Classifier("default", "cpu", backend="torch")
    prior = np.array(classifier.meta.class_prior)
    assert classifier.meta.class_names[int(prior.argmax())] == "neutral"  # FER+ Train's largest class
    plain = classifier.classify([face_crop])
    classifier.prior_correction = 1.0
    balanced = classifier.classify([face_crop])
    expected = plain / prior
    np.testing.assert_allclose(balanced, expected / expected.sum(1, keepdims=True), atol=1e-5)


def test_the_pipeline_takes_the_operating_point_from_its_config_and_at_run_time():
    pipeline = EmotionPipeline(PipelineConfig(prior_correction=0.25, detector="full_frame"))
    assert pipeline.classifier.prior_correction == 0.25
    pipeline.reconfigure(prior_correction=0.9)
    assert pipeline.classifier.prior_correction == 0.9
    with pytest.raises(ValueError, match=r"prior_correction must be in \[0.0, 1.0\]"):
        pipeline.reconfigure(prior_correction=1.5)


def test_a_class_prior_that_does_not_fit_the_classes_is_refused():
    with pytest.raises(ModelLoadError, match="class_prior must be 2 positive numbers"):
        ModelMetadata.from_dict({"architecture": "x", "class_names": ["a", "b"], "class_prior": [1.0]})
    with pytest.raises(ModelLoadError, match="class_prior"):
        ModelMetadata.from_dict({"architecture": "x", "class_names": ["a", "b"], "class_prior": [0.5, 0.0]})


def test_the_rule_picks_the_best_balanced_recall_within_the_accuracy_budget():
    rows = [{"prior_correction": 0.0, "accuracy": 0.86, "balanced_recall": 0.70},
            {"prior_correction": 0.4, "accuracy": 0.851, "balanced_recall": 0.76},
            {"prior_correction": 0.8, "accuracy": 0.82, "balanced_recall": 0.79}]
    assert choose(rows, 0.01)["prior_correction"] == 0.4
    assert choose(rows, 0.05)["prior_correction"] == 0.8
    assert choose(rows, 0.0)["prior_correction"] == 0.0


def test_the_sweep_scores_every_setting_on_labelled_faces(tmp_path: Path, capsys):
    split = write_split(tmp_path / "FER2013Valid")
    out = tmp_path / "op.json"
    assert sweep_main(["--data", str(split), "--prior-corrections", "0", "0.5", "1", "--json", str(out),
                       "--png", str(tmp_path / "op.png")]) == 0
    result = json.loads(out.read_text())
    assert [r["prior_correction"] for r in result["rows"]] == [0.0, 0.5, 1.0]
    assert all(0.0 <= r["ece"] <= 1.0 and 0.0 <= r["balanced_recall"] <= 1.0 for r in result["rows"])
    assert result["chosen"] in (0.0, 0.5, 1.0) and (tmp_path / "op.png").stat().st_size > 1000
    assert read_metadata(resolve_model("default")).class_prior is not None
    assert "<- chosen" in capsys.readouterr().out


def test_the_old_flag_still_works_for_a_release_with_one_line(tmp_path: Path, capsys):
    split = write_split(tmp_path / "FER2013Valid")
    out = tmp_path / "op.json"
    assert sweep_main(["--data", str(split), "--strengths", "0", "0.5", "--json", str(out)]) == 0
    assert [r["prior_correction"] for r in json.loads(out.read_text())["rows"]] == [0.0, 0.5]
    assert capsys.readouterr().err.strip() == \
        "--strengths is deprecated, use --prior-corrections (the same settings)"
