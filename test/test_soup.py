"""training.soup: weight averaging, batch-norm re-measurement and the CLI, on tiny real networks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emotion_recognition_ros.core.model_io import load_model, save_model
from emotion_recognition_ros.core.preprocess import faces_to_batch
from training.data import load_folder
from training.fit import FitOptions, fit
from training.model_factory import create_model, make_metadata
from training.recipe import Recipe
from training.evaluate import evaluate_dataset
from training.reports import model_card
from training.soup import (average_state_dicts, check_soupable, greedy_soup, main as soup_main, make_soup,
                           recompute_batchnorm)

from test_training import CLASSES, TINY, make_tree


def _saved(path: Path, seed: int, classes=CLASSES) -> Path:
    torch.manual_seed(seed)
    recipe = Recipe(**TINY)
    return save_model(create_model(recipe, len(classes)), make_metadata(recipe, classes), path)


def test_weights_are_averaged_and_counters_kept(tmp_path: Path):
    a, _ = load_model(_saved(tmp_path / "a", seed=1))
    b, _ = load_model(_saved(tmp_path / "b", seed=2))
    states = [a.state_dict(), b.state_dict()]
    soup = average_state_dicts(states)
    assert torch.allclose(soup["fc.weight"], (states[0]["fc.weight"] + states[1]["fc.weight"]) / 2)
    assert not torch.equal(soup["fc.weight"], states[0]["fc.weight"])
    counter = next(k for k, v in soup.items() if not v.is_floating_point())
    assert soup[counter].dtype == states[0][counter].dtype and torch.equal(soup[counter], states[0][counter])


def test_a_soup_of_one_model_twice_is_that_model(tmp_path: Path):
    path = _saved(tmp_path / "a", seed=1)
    net, meta = make_soup([str(path), str(path)])
    original, _ = load_model(path)
    for key, value in original.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    assert meta.training["soup_of"] == [meta.training["soup_of"][0]] * 2 and meta.weights_sha256 == ""


def test_models_that_differ_in_classes_are_refused_by_name(tmp_path: Path):
    a = load_model(_saved(tmp_path / "a", seed=1))[1]
    b = load_model(_saved(tmp_path / "b", seed=1, classes=["happy", "anger", "surprise"]))[1]
    with pytest.raises(ValueError, match="class_names"):
        check_soupable([a, b])


def test_batchnorm_statistics_are_measured_on_the_given_faces(tmp_path: Path):
    faces = load_folder(make_tree(tmp_path / "data"), CLASSES).images
    net, meta = load_model(_saved(tmp_path / "a", seed=1))
    first_norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = first_norm.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    with torch.no_grad():
        net(faces_to_batch(faces, meta))
    hook.remove()
    assert torch.allclose(first_norm.running_mean, torch.zeros_like(first_norm.running_mean))  # fresh network
    assert recompute_batchnorm(net, meta, faces) > 1 and not net.training
    assert torch.allclose(first_norm.running_mean, seen[0].mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(first_norm.running_var, seen[0].var((0, 2, 3), unbiased=True), rtol=1e-4)


def test_cli_writes_a_loadable_scored_model_and_names_bad_input(tmp_path: Path, capsys):
    tree = make_tree(tmp_path / "data")
    a, b = _saved(tmp_path / "a", seed=1), _saved(tmp_path / "b", seed=2)
    out = tmp_path / "soup" / "model"
    assert soup_main(["--models", str(a), str(b), "--val-data", str(tree), "--bn-data", str(tree),
                      "--out", str(out)]) == 0
    net, meta = load_model(out)
    assert len(meta.training["soup_of"]) == 2 and "re-measured on 18" in meta.training["batchnorm"]
    assert meta.metrics["val"]["n"] == 18 and 0 < meta.temperature and out.with_suffix(".scores.json").is_file()
    assert "soup" in capsys.readouterr().out
    card = model_card(meta, tmp_path / "card.md").read_text()
    assert "Weight soup" in card and all(model_id in card for model_id in meta.training["soup_of"])
    other = _saved(tmp_path / "c", seed=1, classes=["happy", "anger", "surprise"])
    assert soup_main(["--models", str(a), str(other), "--val-data", str(tree), "--out", str(tmp_path / "x")]) == 2
    assert "class_names" in capsys.readouterr().err
    assert soup_main(["--models", str(a), str(tmp_path / "missing.safetensors"), "--val-data", str(tree),
                      "--out", str(tmp_path / "x")]) == 2
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        soup_main(["--models", str(a), "--val-data", str(tree), "--out", str(tmp_path / "x")])


def test_greedy_soup_starts_from_the_best_model_and_never_falls_below_it(tmp_path: Path):
    data = load_folder(make_tree(tmp_path / "data"), CLASSES)
    trained, meta, _ = fit(Recipe(**TINY, epochs=4, lr=3e-3, select="last"), data, None,
                           FitOptions("cpu", seed=0, progress=False))
    good = save_model(trained, meta, tmp_path / "good")
    untrained = _saved(tmp_path / "untrained", seed=5)
    alone = evaluate_dataset(*load_model(good), data)["accuracy"]
    assert alone > evaluate_dataset(*load_model(untrained), data)["accuracy"]  # else the test shows nothing
    lines = []
    net, soup_meta, chosen = greedy_soup([str(untrained), str(good)], data, data, log=lines.append)
    assert chosen[0] == str(good) and "start from" in lines[0] and str(good) in lines[0]
    assert evaluate_dataset(net, soup_meta, data)["accuracy"] >= alone
    assert ("kept" if len(chosen) == 2 else "left out") in lines[1]
