"""FER+ loading (both label schemes), the class vocabulary, dataset mixtures, temperature scaling, exact resume,
the FER+ evaluation protocol and its bad inputs.

Fast: a generated FER+-layout split (test/ferplus_fixture.py) and tiny timm networks (resnet10t at 32 px);
the real FER+ copy only to check the protocol's face count.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import dataset_path
from emotion_recognition_ros.core.classifier import Classifier
from emotion_recognition_ros.core.classes import CKPLUS6, EMOTIONS, VocabularyError, index_map, to_vocabulary
from emotion_recognition_ros.core.model_io import (MODEL_NAMES, ModelLoadError, default_model_path, load_model,
                                              read_metadata, resolve_model, save_model)
from ferplus_fixture import ROWS, write_split
from training.checkpoint import CheckpointError, has_checkpoint
from training.data import DatasetError, load_dataset, load_ferplus, load_mixture
from training.batches import TrainingArrays, epoch_order
from training.fit import FitOptions, fit
from training.inference import predict_proba
from training.loss import soft_cross_entropy
from training.model_factory import create_model, make_metadata
from training.recipe import Recipe
from training.evaluate import main as evaluate_main
from training.presets import get_preset
from training.temperature import fit_temperature, reliability
from training.train import main as train_main

torch.set_num_threads(1)
cv2.setNumThreads(1)

FERPLUS = dataset_path("ferplus")
TINY = dict(architecture="resnet10t", pretrained="none", input_size=32, source_size=48, batch_size=8,
            drop_rate=0.0)


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return write_split(tmp_path / "FER2013Test")


def tiny_recipe(**changes) -> Recipe:
    return replace(get_preset("ferplus"), **{**TINY, "epochs": 3, **changes})


def tiny_model_file(path: Path, classes=EMOTIONS, temperature: float = 1.0, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    recipe = Recipe(**TINY)
    meta = make_metadata(recipe, classes)
    meta.temperature = temperature
    save_model(create_model(recipe, len(classes)), meta, path)
    return path


# --- vocabulary -------------------------------------------------------------------------------------------

def test_vocabulary_maps_every_dataset_onto_our_names():
    assert EMOTIONS == ("neutral", "happy", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert to_vocabulary("happiness", "ferplus") == "happy"
    assert to_vocabulary("neutral", "ferplus") == "neutral"
    assert [to_vocabulary(c, "ckplus") for c in CKPLUS6] == list(CKPLUS6)
    assert to_vocabulary("angry", "fer") == "anger" and to_vocabulary("sad", "fer") == "sadness"
    with pytest.raises(VocabularyError, match="'unknown' of dataset 'ferplus'"):
        to_vocabulary("unknown", "ferplus")
    with pytest.raises(VocabularyError, match="unknown dataset"):
        to_vocabulary("happy", "affectnet")
    assert index_map(["anger", "happy"], EMOTIONS) == [4, 1]
    with pytest.raises(VocabularyError, match="contempt"):
        index_map(["contempt"], CKPLUS6)


# --- FER+ loading -----------------------------------------------------------------------------------------

def test_majority_scheme_keeps_unique_emotion_maxima_and_counts_the_rest(split: Path):
    data = load_ferplus(split, scheme="majority")
    assert data.class_names == list(EMOTIONS)
    names = [Path(p).name for p in data.paths]
    assert names == [ROWS[i][0] for i in (0, 1, 2, 3, 7, 8, 9, 10, 11)]
    assert [data.class_names[i] for i in data.labels] == [
        "neutral", "happy", "surprise", "sadness", "contempt", "anger", "disgust", "fear", "happy"]
    assert data.dropped == {"tie": 1, "unknown": 1, "NF": 1}
    assert data.targets is None and data.images[0].shape == (48, 48)
    assert np.array_equal(data.images[0], cv2.imread(str(split / ROWS[0][0]), cv2.IMREAD_GRAYSCALE))


def test_soft_scheme_gives_vote_distributions_over_the_emotions(split: Path):
    data = load_ferplus(split, scheme="soft")
    assert len(data) == 10 and data.dropped == {"unknown": 1, "NF": 1}
    by_name = {Path(p).name: t for p, t in zip(data.paths, data.targets)}
    happy_surprise = by_name["fer0000002.png"]
    assert happy_surprise[EMOTIONS.index("happy")] == pytest.approx(0.7)
    assert happy_surprise[EMOTIONS.index("surprise")] == pytest.approx(0.3)
    sad = by_name["fer0000004.png"]  # the unknown vote is not an emotion: 8 of 9 emotion votes
    assert sad[EMOTIONS.index("sadness")] == pytest.approx(8 / 9) and sad.sum() == pytest.approx(1)
    tie = by_name["fer0000005.png"]  # ties stay in the soft scheme
    assert tie[EMOTIONS.index("anger")] == pytest.approx(0.5) == tie[EMOTIONS.index("disgust")]
    assert np.allclose(data.targets.sum(1), 1)


def test_fewer_classes_drop_the_faces_of_the_others_and_say_so(split: Path):
    data = load_ferplus(split, list(CKPLUS6), "majority")
    assert data.class_names == list(CKPLUS6) and len(data) == 7
    assert data.dropped == {"tie": 1, "unknown": 1, "NF": 1, "class_not_asked:neutral": 1,
                            "class_not_asked:contempt": 1}
    soft = load_ferplus(split, ["happy", "surprise"], "soft")  # distribution over the asked classes only
    assert np.allclose(soft.targets.sum(1), 1) and len(soft) == 3


def test_load_dataset_recognises_the_ferplus_layout(split: Path):
    assert len(load_dataset(split, list(EMOTIONS))) == 9
    assert load_dataset(split, list(EMOTIONS), "soft").targets is not None


@pytest.mark.parametrize("problem, expected", [
    ("missing_image", r"label\.csv:3: image 'fer0000003\.png' not found"),
    ("too_few_columns", r"label\.csv:2: 11 columns, expected 12"),
    ("too_many_columns", r"label\.csv:4: 13 columns, expected 12"),
    ("non_numeric_votes", r"label\.csv:5: vote counts must be whole numbers"),
    ("negative_votes", r"label\.csv:1: negative vote count"),
    ("bad_face_box", r"label\.csv:1: face box"),
    ("empty_file", r"label\.csv: empty split \(no label rows\)"),
    ("nothing_left", r"label\.csv: empty split: no row has a majority label"),
    ("unreadable_image", r"label\.csv:1: .*fer0000001\.png: unreadable or empty image"),
    ("no_label_file", r"label\.csv: FER\+ label file not found"),
])
def test_bad_ferplus_input_names_the_file_and_line(split: Path, problem: str, expected: str):
    label = split / "label.csv"
    lines = label.read_text().splitlines()
    if problem == "missing_image":
        (split / ROWS[2][0]).unlink()
    elif problem == "too_few_columns":
        lines[1] = lines[1].rsplit(",", 1)[0]
    elif problem == "too_many_columns":
        lines[3] += ",0"
    elif problem == "non_numeric_votes":
        lines[4] = lines[4].replace(",5,5,", ",five,5,")
    elif problem == "negative_votes":
        lines[0] = lines[0].replace(",10,", ",-10,", 1)
    elif problem == "bad_face_box":
        lines[0] = lines[0].replace('"(0, 0, 48, 48)"', '"0 0 48 48"')
    elif problem == "empty_file":
        lines = []
    elif problem == "nothing_left":
        lines = [ln for ln in lines if ln.startswith(("fer0000006", "fer0000007"))]
    elif problem == "unreadable_image":
        (split / ROWS[0][0]).write_bytes(b"not a png")
    elif problem == "no_label_file":
        load = split / "label.csv"
        load.unlink()
        with pytest.raises(DatasetError, match=expected):
            load_ferplus(split)
        return
    label.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(DatasetError, match=expected):
        load_ferplus(split)


def test_a_face_box_outside_the_image_is_named_once_with_its_line(split: Path):
    label = split / "label.csv"
    label.write_text(label.read_text().replace('"(0, 0, 48, 48)"', '"(0, 0, 60, 60)"', 1))
    with pytest.raises(DatasetError) as info:
        load_ferplus(split)
    message = str(info.value)
    assert message == f"{label}:1: face box (0, 0, 60, 60) does not fit the 48x48 image", message


def test_the_real_ferplus_test_split_gives_the_protocols_3371_faces():
    if not (FERPLUS / "FER2013Test" / "label.csv").is_file():
        pytest.skip(f"FER+ not found at {FERPLUS} (../shared beside the checkout)")
    data = load_ferplus(FERPLUS / "FER2013Test", scheme="majority")
    assert len(data) == 3371 and sum(data.dropped.values()) == 3573 - 3371
    assert data.counts()["contempt"] == 27
    assert len(load_ferplus(FERPLUS / "FER2013Test", list(CKPLUS6))) == 2184


# --- mixtures and the soft loss ---------------------------------------------------------------------------

def make_posed_tree(root: Path, classes=("anger", "contempt", "happy"), per_class: int = 4) -> Path:
    rng = np.random.default_rng(1)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"S{10 + i:03d}_001_{i:08d}.png"), rng.integers(0, 256, (48, 48), np.uint8))
    return root


def test_mixture_labels_every_dataset_in_one_vocabulary_with_its_weight(split: Path, tmp_path: Path):
    posed = make_posed_tree(tmp_path / "ckplus")
    data = load_mixture([split, posed], list(EMOTIONS), [1.0, 2.5], scheme="soft")
    assert data.class_names == list(EMOTIONS) and len(data) == 10 + 12
    assert np.allclose(data.targets.sum(1), 1)
    posed_rows = slice(10, 22)  # CK+ images (read in our class order): one-hot targets, labels in our vocabulary
    assert [data.class_names[i] for i in data.labels[posed_rows]] == ["happy"] * 4 + ["anger"] * 4 + ["contempt"] * 4
    assert np.array_equal(data.targets[posed_rows], np.eye(8, dtype=np.float32)[data.labels[posed_rows]])
    assert data.repeats.tolist() == [1.0] * 10 + [2.5] * 12
    order = epoch_order(len(data), np.random.default_rng(0), data.repeats)
    draws = np.bincount(order, minlength=len(data))
    assert (draws[:10] == 1).all() and set(draws[10:]) <= {2, 3}
    with pytest.raises(DatasetError, match=r"class\(es\) \['neutral'"):
        load_mixture([posed], list(EMOTIONS))
    with pytest.raises(DatasetError, match="2 dataset weights for 1 datasets"):
        load_mixture([split], list(EMOTIONS), [1, 2])


def test_class_balance_draws_rare_classes_more_often_and_keeps_the_epoch_length():
    labels = np.array([0] * 90 + [1] * 10)
    arrays = TrainingArrays(np.zeros((100, 4, 4), np.uint8), labels, repeats=np.array([1.0] * 50 + [2.0] * 50))
    assert arrays.balanced(0) is arrays
    for bad in (-0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="class_balance must be between 0 and 1"):
            arrays.balanced(bad)
    for class_balance, rare_share in [(0.5, 0.25), (1.0, 0.5)]:
        repeats = arrays.balanced(class_balance).repeats
        assert repeats.sum() == pytest.approx(150)  # as many draws per epoch as the dataset weights gave
        draws = np.bincount(labels, weights=repeats)
        assert draws[1] / draws.sum() == pytest.approx(rare_share, rel=0.25)
        assert repeats[60] / repeats[0] == pytest.approx(2.0)  # dataset weights kept within a class
    assert arrays.class_shares(2) == pytest.approx([130 / 150, 20 / 150], abs=1e-6)
    assert arrays.balanced(1.0).class_shares(2) == pytest.approx([0.5, 0.5], abs=1e-6)  # the prior it teaches
    order = epoch_order(100, np.random.default_rng(0), arrays.balanced(1.0).repeats)
    assert abs(np.bincount(labels[order])[1] / len(order) - 0.5) < 0.1


def test_soft_cross_entropy_equals_cross_entropy_on_one_hot_targets():
    logits = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 7, 1, 1])
    one_hot = F.one_hot(labels, 8).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, labels))
    assert torch.allclose(soft_cross_entropy(logits, one_hot, 0.1), F.cross_entropy(logits, labels, label_smoothing=0.1))


# --- temperature scaling and calibration ------------------------------------------------------------------

def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 8))
    true_t = 2.5
    probs = np.exp(logits / true_t)
    probs /= probs.sum(1, keepdims=True)
    labels = np.array([rng.choice(8, p=p) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)


def test_ece_of_known_bins():
    probs = np.tile([0.8, 0.2], (10, 1))
    labels = np.array([0] * 5 + [1] * 5)  # confidence 0.8, accuracy 0.5
    cal = reliability(probs, labels)
    assert cal["ece"] == pytest.approx(0.3) and cal["bins"] == 15
    assert sum(b["n"] for b in cal["per_bin"]) == 10
    assert reliability(np.tile([1.0, 0.0], (4, 1)), np.zeros(4, int))["ece"] == pytest.approx(0.0)


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_the_models_temperature_is_applied_by_the_node_classifier_and_training(tmp_path: Path, backend: str):
    plain = Classifier(tiny_model_file(tmp_path / "plain", temperature=1.0), "cpu", backend=backend)
    warm = Classifier(tiny_model_file(tmp_path / "warm", temperature=2.5), "cpu", backend=backend)
    assert read_metadata(tmp_path / "warm").temperature == 2.5
    faces = [np.random.default_rng(i).integers(0, 256, (48, 48), np.uint8) for i in range(4)]
    p1, p2 = plain.classify(faces), warm.classify(faces)
    expected = np.exp(np.log(p1) / 2.5)
    expected /= expected.sum(1, keepdims=True)
    assert np.allclose(p2, expected, atol=1e-5)
    assert not np.allclose(p1, p2, atol=1e-3)  # the temperature did change the scores
    model, meta = load_model(tmp_path / "warm")
    assert np.allclose(predict_proba(model, meta, faces), p2, atol=1e-4)


def test_a_bad_temperature_in_the_metadata_is_refused(tmp_path: Path):
    path = tiny_model_file(tmp_path / "m")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["temperature"] = -1
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="temperature must be a positive number"):
        load_model(path)


# --- training: exact resume, best-so-far, CLI -------------------------------------------------------------

class Interrupted(Exception):
    pass


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path: Path):
    train = load_ferplus(write_split(tmp_path / "Train", repeat=3), scheme="soft")
    val = load_ferplus(write_split(tmp_path / "Valid"))
    recipe = tiny_recipe(select="last", augment=replace(get_preset("ferplus").augment, erase=0.5))

    whole, _, whole_history = fit(recipe, train, val, FitOptions("cpu", seed=3, progress=False, checkpoint_dir=tmp_path / "a"))

    def interrupt_after_first_epoch(model, meta, row, probs):
        if row["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(recipe, train, val, FitOptions("cpu", seed=3, progress=False, checkpoint_dir=tmp_path / "b",
                                           on_epoch=interrupt_after_first_epoch))
    assert has_checkpoint(tmp_path / "b")
    resumed, _, resumed_history = fit(recipe, train, val, FitOptions("cpu", seed=3, progress=False,
                                                                     checkpoint_dir=tmp_path / "b", resume=True))
    assert [r["train_loss"] for r in resumed_history] == [r["train_loss"] for r in whole_history]
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Resuming with another recipe is refused rather than silently mixing two runs:
    with pytest.raises(CheckpointError, match="another recipe, seed or training set"):
        fit(replace(recipe, lr=0.5), train, val, FitOptions("cpu", seed=3, progress=False,
                                                            checkpoint_dir=tmp_path / "b", resume=True))


def test_train_cli_on_ferplus_writes_best_so_far_calibrated_models(tmp_path: Path, capsys):
    train_dir, val_dir = write_split(tmp_path / "Train", repeat=3), write_split(tmp_path / "Valid")
    out = tmp_path / "run"
    args = ["--preset", "ferplus", "--data", str(train_dir), "--split", "none", "--val-data", str(val_dir),
            "--arch", "resnet10t", "--pretrained", "none", "--input-size", "32", "--epochs", "2",
            "--batch-size", "8", "--out", str(out), "--no-progress", "--log-every", "1"]
    assert train_main(args) == 0
    log = (out / "train.log").read_text()
    assert "run ETA" in log and "command: python -m training.train --preset ferplus" in log
    meta = read_metadata(out / "model")
    assert meta.class_names == list(EMOTIONS) and meta.temperature > 0
    assert meta.training["preset"] == "ferplus" and meta.training["recipe"]["label_scheme"] == "soft"
    assert meta.training["recipe"]["epochs"] == 2  # the override is what the metadata records
    assert meta.metrics["val"]["n"] == 9 and "ece" in meta.metrics["val"]
    best = read_metadata(out / "best" / "model")
    assert best.training["epoch"] in (1, 2) and best.metrics["val"]["n"] == 9 and best.training["preset"] == "ferplus"
    card = (out / "model_card.md").read_text()
    assert "FER+ labels: MIT" in card and "No 'neutral' class" not in card and f"T = {meta.temperature:.3f}" in card
    assert has_checkpoint(out)
    assert train_main(args + ["--resume"]) == 0  # nothing left to train: same model again
    assert "resumed from" in (out / "train.log").read_text()


def test_ckplus6_starts_from_a_face_model_but_not_its_head(tmp_path: Path):
    face_model = tiny_model_file(tmp_path / "wild", EMOTIONS, seed=1)
    recipe = replace(get_preset("ckplus6"), **{**TINY, "pretrained": f"model:{face_model}"})
    model = create_model(recipe, 6)
    trained, _ = load_model(face_model)
    ours, theirs = model.state_dict(), trained.state_dict()
    assert torch.equal(ours["conv1.0.weight"], theirs["conv1.0.weight"])
    assert ours["fc.weight"].shape == (6, theirs["fc.weight"].shape[1])
    assert ours["fc.weight"].abs().max() < 0.1 and not ours["fc.bias"].any()
    with pytest.raises(ValueError, match="is a resnet10t, the recipe wants"):
        create_model(replace(recipe, architecture="resnet14t"), 6)


# --- evaluation -------------------------------------------------------------------------------------------

def test_evaluate_cli_scores_the_ferplus_protocol_with_calibration(split: Path, tmp_path: Path, capsys):
    model = tiny_model_file(tmp_path / "m", temperature=1.7)
    png = tmp_path / "reliability.png"
    assert evaluate_main(["--data", str(split), "--model", str(model), "--reliability-png", str(png)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the JSON when no --json file is given
    assert result["n"] == 9 and result["dropped"] == {"tie": 1, "unknown": 1, "NF": 1} and result["dropped_total"] == 3
    assert {"accuracy", "macro_f1", "per_class", "confusion", "calibration"} <= result.keys()
    assert result["temperature"] == 1.7 and result["calibration"]["bins"] == 15
    assert np.array(result["confusion"]).sum() == 9 and len(result["per_class"]) == 8
    assert "protocol dropped 3 rows" in captured.err and png.stat().st_size > 0
    loaded, meta = load_model(model)
    preds = predict_proba(loaded, meta, load_ferplus(split).images).argmax(1)
    labels = load_ferplus(split).labels
    assert result["accuracy"] == pytest.approx(float((preds == labels).mean()))


def test_evaluate_cli_reports_bad_ferplus_input(split: Path, tmp_path: Path, capsys):
    model = tiny_model_file(tmp_path / "m")
    (split / "label.csv").write_text((split / "label.csv").read_text().replace(",0,0,6,", ",0,x,6,"))
    assert evaluate_main(["--data", str(split), "--model", str(model)]) == 2
    assert "label.csv:3: vote counts must be whole numbers" in capsys.readouterr().err


def test_models_are_found_by_name_or_path(tmp_path: Path):
    assert MODEL_NAMES == ("default", "ckplus6")
    assert resolve_model("default") == default_model_path() == resolve_model(None)
    assert resolve_model("ckplus6") == default_model_path().with_name("ckplus6.safetensors")
    assert resolve_model(str(tmp_path / "x")) == tmp_path / "x"
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "x")
