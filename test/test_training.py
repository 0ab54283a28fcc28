"""Training package: datasets, splits, ImageNet init, loss, export round-trip, evaluation, bad input.

Fast: tiny timm networks (resnet10t) on small generated images in tmp_path; the real CK+48 copy only for
split checks and the lite0 ImageNet mapping.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from conftest import CKPLUS, require_shared_data
from emotion_recognition_ros.core.model_io import ModelLoadError, load_model, save_model
from emotion_recognition_ros.core.preprocess import faces_to_batch
from training.augment import AugmentConfig
from training.data import DatasetError, load_dataset, load_fer2013, load_folder
from training.data.splits import random_split, subject_folds, subject_split, subjects_of
from training.batches import TrainingArrays
from training.fit import FitOptions, fit
from training.inference import predict_proba
from training.model_factory import create_model, make_metadata
from training.recipe import Recipe
from training.trainer import Trainer, train_one_epoch
from training.evaluate import evaluate_folder, main as evaluate_main
from training.metrics import score

torch.set_num_threads(1)
cv2.setNumThreads(1)

CLASSES = ["anger", "happy", "surprise"]
TINY = dict(architecture="resnet10t", pretrained="none", input_size=32, source_size=48, batch_size=8,
            drop_rate=0.0, augment=None)


def pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """48x48 gray image whose class is visible: horizontal stripes, vertical stripes or a blob."""
    yy, xx = np.mgrid[0:48, 0:48]
    if label == 0:
        img = 127 + 100 * np.sin(yy / 2.0)
    elif label == 1:
        img = 127 + 100 * np.sin(xx / 2.0)
    else:
        img = 255 * np.exp(-((yy - 24) ** 2 + (xx - 24) ** 2) / 120.0)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def make_tree(root: Path, per_class: int = 6, subjects: int = 6, ckplus_names: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            stem = f"S{100 + i % subjects:03d}_{label + 1:03d}_{i:08d}" if ckplus_names else f"img{i}"
            cv2.imwrite(str(root / name / f"{stem}.png"), pattern(label, rng))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")


# --- datasets -------------------------------------------------------------------------------------------

def test_folder_loads_classes_in_given_order_with_subjects(tree: Path):
    data = load_folder(tree, ["surprise", "anger"])
    assert data.class_names == ["surprise", "anger"]
    assert data.counts() == {"surprise": 6, "anger": 6}
    assert data.has_subjects and set(data.subjects) == {f"S{100 + i:03d}" for i in range(6)}
    first = cv2.imread(data.paths[0], cv2.IMREAD_GRAYSCALE)
    assert Path(data.paths[0]).parent.name == "surprise" and np.array_equal(data.images[0], first)


def test_fer2013_csv(tmp_path: Path):
    rng = np.random.default_rng(1)
    rows = ["emotion,pixels,Usage"]
    for label, usage in [(0, "Training"), (3, "Training"), (6, "PublicTest"), (5, "PrivateTest")]:
        rows.append(f"{label},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{usage}")
    csv = tmp_path / "fer2013.csv"
    csv.write_text("\n".join(rows) + "\n")
    data = load_dataset(csv, ["anger", "happy", "surprise"])
    assert data.class_names == ["anger", "happy", "surprise"] and list(data.labels) == [0, 1, 2]
    assert data.images[0].shape == (48, 48) and not data.has_subjects
    assert len(load_fer2013(csv, ["anger", "happy"], usage=["Training"])) == 2
    assert load_fer2013(csv, ["neutral", "surprise"]).paths[0].endswith("fer2013.csv:4")


def test_empty_class_folder_is_named(tree: Path):
    (tree / "fear").mkdir()
    with pytest.raises(DatasetError, match=r"fear: class folder holds no images"):
        load_folder(tree, CLASSES + ["fear"])


def test_unreadable_image_is_named(tree: Path):
    bad = tree / "happy" / "S999_001_00000001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DatasetError, match="S999_001_00000001.png: unreadable"):
        load_folder(tree, CLASSES)


def test_class_list_that_does_not_match_the_data(tree: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match=r"no folder for class\(es\) \['contempt'\]"):
        load_folder(tree, CLASSES + ["contempt"])
    csv = tmp_path / "f.csv"
    csv.write_text("emotion,pixels,Usage\n0," + " ".join(["0"] * 4) + ",Training\n")
    with pytest.raises(DatasetError, match="FER2013 has no class"):
        load_fer2013(csv, ["anger", "contempt"])
    with pytest.raises(DatasetError, match=r"no rows of class\(es\) \['happy'\]"):
        load_fer2013(csv, ["anger", "happy"])


# --- splits ---------------------------------------------------------------------------------------------

def test_random_split_is_exactly_the_studys():
    n = 738
    labels = np.arange(n) % 6
    split = random_split(n, labels)
    train, rest = train_test_split(np.arange(n), test_size=0.3, random_state=3)
    val, test = train_test_split(rest, test_size=0.5, random_state=3)
    assert np.array_equal(split.train, train) and np.array_equal(split.val, val)
    assert np.array_equal(split.test, test)
    assert (len(split.train), len(split.val), len(split.test)) == (516, 111, 111)
    split.check_disjoint()
    assert np.array_equal(random_split(n, labels).test, split.test)  # deterministic
    assert not np.array_equal(random_split(n, labels, seed=4).test, split.test)


def test_subject_split_refuses_data_without_subject_ids(tmp_path: Path):
    data = load_folder(make_tree(tmp_path / "plain", ckplus_names=False), CLASSES)
    with pytest.raises(DatasetError, match="refusing to fall back to a per-image split"):
        subject_split(data, k=3)


def _check_grouped(data, k: int) -> None:
    folds = subject_folds(data, k)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(data)))  # each image tested once
    for fold in range(k):
        split = subject_split(data, k, fold, val=True)
        split.check_disjoint()
        train, val, test = (subjects_of(data, s) for s in (split.train, split.val, split.test))
        assert not train & test and not train & val and not val & test
        assert len(split.train) + len(split.val) + len(split.test) == len(data)


def test_grouped_splits_never_share_a_subject_generated(tree: Path):
    _check_grouped(load_folder(tree, CLASSES), k=3)


def test_grouped_splits_never_share_a_subject_ckplus():
    require_shared_data()
    data = load_folder(CKPLUS)
    assert len(data) == 738
    _check_grouped(data, k=10)


# --- model, training, export, evaluation ----------------------------------------------------------------

def test_loss_falls_over_a_few_steps(tree: Path):
    data = load_folder(tree, CLASSES)
    recipe = Recipe(**TINY, lr=3e-3, schedule="constant")
    torch.manual_seed(0)
    model = create_model(recipe, 3)
    meta = make_metadata(recipe, CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    arrays, rng = TrainingArrays(data.as_array(48), data.labels), np.random.default_rng(0)
    trainer = Trainer(model, optimizer, meta, recipe, torch.device("cpu"))
    losses = [train_one_epoch(trainer, arrays, e, rng)[0] for e in range(6)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_fit_then_save_load_round_trips_bit_exactly(tree: Path, tmp_path: Path):
    data = load_folder(tree, CLASSES)
    recipe = Recipe(**{**TINY, "augment": AugmentConfig()}, epochs=1, select="last")
    model, meta, history = fit(recipe, data, None, FitOptions("cpu", seed=0, progress=False))
    assert len(history) == 1 and meta.training["recipe"]["architecture"] == "resnet10t"
    save_model(model, meta, tmp_path / "m")
    loaded, meta2 = load_model(tmp_path / "m.safetensors")
    saved = model.state_dict()
    for key, value in loaded.state_dict().items():
        expected = saved[key].half().float() if saved[key].is_floating_point() else saved[key]
        assert torch.equal(value, expected.to(value.dtype)), key
    assert meta2.class_names == CLASSES and meta2.input_size == 32 and meta2.source_size == 48
    assert meta2.mean == [0.5] * 3 and meta2.face_crop == {"margin": 0.0}
    # The prior it learned travels with it, so the node's prior_correction works on a retrained model too.
    shares = np.bincount(data.labels, minlength=len(CLASSES)) / len(data)
    assert meta2.class_prior == pytest.approx(shares.tolist(), abs=1e-6)
    # The loaded model computes what the fp16-rounded trained one computes.
    model.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in saved.items()})
    faces = data.images[:5]
    assert np.allclose(predict_proba(model, meta, faces), predict_proba(loaded, meta2, faces), atol=1e-6)


def test_score_on_a_constructed_case():
    result = score([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert result["accuracy"] == pytest.approx(4 / 6) and result["n"] == 6
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # a: P 1/2 R 1/2 F1 1/2; b: P 2/3 R 1 F1 4/5; c: P 1 R 1/2 F1 2/3
    assert result["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def _constant_model(path: Path, answer: int, classes=CLASSES) -> Path:
    """A real saved network whose head ignores the features and always answers class `answer`."""
    recipe = Recipe(**TINY)
    model = create_model(recipe, len(classes))
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.eye(len(classes))[answer] * 5)
    return save_model(model, make_metadata(recipe, classes), path)


def test_evaluate_cli_writes_known_scores(tree: Path, tmp_path: Path, capsys):
    weights = _constant_model(tmp_path / "always_happy", answer=1)
    out, png = tmp_path / "eval.json", tmp_path / "confusion.png"
    assert evaluate_main(["--data", str(tree), "--model", str(weights), "--json", str(out),
                          "--confusion-png", str(png), "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 18 and result["accuracy"] == pytest.approx(1 / 3)
    assert result["confusion"] == [[0, 6, 0], [0, 6, 0], [0, 6, 0]]
    assert result["macro_f1"] == pytest.approx(0.5 / 3)  # happy: P 1/3, R 1 -> F1 1/2; others 0
    assert result["class_names"] == CLASSES and result["model_id"].startswith("resnet10t@")
    assert result["per_class"]["happy"]["recall"] == 1.0 and png.stat().st_size > 1000
    assert "accuracy 0.3333" in capsys.readouterr().out
    # The Python API gives the same answer, and a subset of classes is mapped by name.
    assert evaluate_folder(tree, weights, ["happy"])["accuracy"] == 1.0


def test_evaluate_names_corrupt_and_mismatched_model_files(tree: Path, tmp_path: Path, capsys):
    weights = _constant_model(tmp_path / "m", answer=0)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(weights.read_bytes()[:100])
    (tmp_path / "corrupt.json").write_text((tmp_path / "m.json").read_text())
    assert evaluate_main(["--data", str(tree), "--model", str(corrupt), "--json", str(tmp_path / "x.json")]) == 2
    assert "corrupt.safetensors" in capsys.readouterr().err
    _constant_model(tmp_path / "four", answer=0, classes=CLASSES + ["fear"])
    (tmp_path / "four.json").write_text((tmp_path / "m.json").read_text())  # says 3 classes, weights have 4
    with pytest.raises(ModelLoadError, match="four.safetensors"):
        evaluate_folder(tree, tmp_path / "four")
    with pytest.raises(DatasetError, match=r"no folder for class\(es\) \['sadness'\]"):
        evaluate_folder(tree, weights, ["sadness"])


def test_train_cli_subject_fold_writes_reports(tree: Path, tmp_path: Path):
    from training.train import main as train_main

    out = tmp_path / "run"
    rc = train_main(["--data", str(tree), "--classes", *CLASSES, "--preset", "study", "--split", "subject",
                     "--folds", "3", "--fold", "1", "--arch", "resnet10t", "--pretrained", "none",
                     "--input-size", "32", "--epochs", "2", "--batch-size", "8", "--out", str(out),
                     "--no-progress", "--device", "cpu"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] > 0 and "subject" in metrics["protocol"] and len(metrics["history"]) == 2
    for name in ("model.safetensors", "model.json", "curves.png", "confusion.png", "model_card.md"):
        assert (out / name).stat().st_size > 0, name
    card = (out / "model_card.md").read_text()
    assert "Lucey" in card and "Kanade" in card and "non-commercial" in card
    _, meta = load_model(out / "model")
    assert meta.metrics["test"]["accuracy"] == metrics["test"]["accuracy"]


def test_lite0_imagenet_mapping_recognises_a_cat():
    from skimage import data as skdata

    from training.pretrained import imagenet_state_dict
    import timm

    state = imagenet_state_dict("tf_efficientnet_lite0")
    assert len(state) == 296
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    model.load_state_dict(state)
    rgb = cv2.resize(skdata.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)
    x = (torch.as_tensor(rgb).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        top5 = model.eval()(x[None]).topk(5).indices[0].tolist()
    assert top5[0] in range(281, 286), top5  # ImageNet 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_imagenet_init_changes_only_the_backbone():
    from training.pretrained import imagenet_state_dict

    recipe = Recipe(pretrained="imagenet", drop_rate=0.0)
    torch.manual_seed(0)
    model = create_model(recipe, 6)
    state = imagenet_state_dict("tf_efficientnet_lite0")
    assert torch.equal(model.conv_stem.weight, state["conv_stem.weight"])
    assert torch.equal(model.blocks[6][0].conv_pwl.weight, state["blocks.6.0.conv_pwl.weight"])
    assert model.classifier.weight.shape == (6, 1280)  # fresh 6-way head, not ImageNet's 1000
    with torch.no_grad():
        x = faces_to_batch([np.full((48, 48), 128, np.uint8)], make_metadata(recipe, [str(i) for i in range(6)]))
        assert torch.isfinite(model.eval()(x)).all()


def test_cv_then_export_records_the_cv_result(tree: Path, tmp_path: Path):
    from training.cv import main as cv_main
    from training.export import main as export_main

    rc = cv_main(["--data", str(tree), "--classes", *CLASSES, "--preset", "default", "--folds", "3",
                  "--arch", "resnet10t", "--pretrained", "none", "--input-size", "32", "--epochs", "1",
                  "--batch-size", "8", "--out", str(tmp_path / "cv"), "--no-progress", "--device", "cpu"])
    assert rc == 0
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == [0, 1, 2] and summary["pooled"]["n"] == 18
    assert np.mean([f["accuracy"] for f in summary["folds"]]) == pytest.approx(summary["accuracy_mean"])
    tested = [s for f in summary["folds"] for s in f["test_subjects"]]
    assert sorted(tested) == sorted(set(tested)) and len(tested) == 6  # every person tested exactly once
    weights = _constant_model(tmp_path / "m", answer=2)
    assert export_main(["--model", str(weights), "--out", str(tmp_path / "shipped" / "default"),
                        "--cv", str(tmp_path / "cv" / "cv.json")]) == 0
    _, meta = load_model(tmp_path / "shipped" / "default")
    assert meta.metrics["subject_cv"]["accuracy"] == summary["accuracy_mean"]
    assert "subject-independent 3-fold" in (tmp_path / "shipped" / "default.md").read_text()
