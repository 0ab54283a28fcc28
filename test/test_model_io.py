"""Model files are safetensors + JSON only; every way they can be wrong is a clear error naming the file."""
from __future__ import annotations

import json

import pytest
import torch

from emotion_recognition_ros.core.classes import CKPLUS6
from emotion_recognition_ros.core.model_io import (ModelLoadError, ModelMetadata, build_model,
                                              load_model, save_model)

ARCH = "mobilenetv3_small_050"  # small timm net: these tests are about the file format, not accuracy


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(ARCH, len(CKPLUS6))
    meta = ModelMetadata(ARCH, list(CKPLUS6), input_size=64)
    save_model(model, meta, tmp_path / "m")
    return tmp_path / "m", model


def test_save_load_roundtrip_is_exact_in_fp16(saved):
    path, model = saved
    loaded, meta = load_model(path.with_suffix(".json"))
    assert meta.class_names == list(CKPLUS6) and meta.input_size == 64
    assert meta.model_id.startswith(ARCH + "@") and len(meta.weights_sha256) == 64
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        expected = a.half().to(a.dtype) if a.is_floating_point() else a
        assert torch.equal(expected, b), name


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_pickles_are_refused_without_opening(tmp_path, suffix):
    evil = tmp_path / f"model{suffix}"
    evil.write_bytes(b"not even opened")
    with pytest.raises(ModelLoadError, match="never loaded"):
        load_model(evil)


def test_missing_files_name_the_file(tmp_path, saved):
    with pytest.raises(ModelLoadError, match="nope.json"):
        load_model(tmp_path / "nope")
    path, _ = saved
    path.with_suffix(".safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"m\.safetensors: model weights file not found"):
        load_model(path)


def test_corrupt_weights_are_refused(saved):
    path, _ = saved
    weights = path.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=r"m\.safetensors: not a valid safetensors file"):
        load_model(path)


def test_corrupt_json_is_refused(saved):
    path, _ = saved
    path.with_suffix(".json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match=r"m\.json: not a readable JSON file"):
        load_model(path)


def _edit_meta(path, **changes):
    meta_path = path.with_suffix(".json")
    data = json.loads(meta_path.read_text())
    data.update(changes)
    meta_path.write_text(json.dumps(data))


def test_unknown_architecture_is_refused(saved):
    path, _ = saved
    _edit_meta(path, architecture="no_such_net_v9")
    with pytest.raises(ModelLoadError, match="unknown architecture 'no_such_net_v9'"):
        load_model(path)


def test_metadata_that_does_not_match_tensors_is_refused(saved):
    path, _ = saved
    _edit_meta(path, class_names=["a", "b", "c"])
    with pytest.raises(ModelLoadError, match=r"do not match .* 3 classes.*shape"):
        load_model(path)
    _edit_meta(path, class_names=list(CKPLUS6), architecture="mobilenetv3_small_075")
    with pytest.raises(ModelLoadError, match="do not match architecture 'mobilenetv3_small_075'"):
        load_model(path)


def test_metadata_missing_fields_or_duplicate_classes(saved):
    path, _ = saved
    meta_path = path.with_suffix(".json")
    data = json.loads(meta_path.read_text())
    del data["class_names"]
    meta_path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="lacks required field"):
        load_model(path)
    _edit_meta(path, class_names=["happy", "happy", "a", "b", "c", "d"])
    with pytest.raises(ModelLoadError, match="distinct"):
        load_model(path)


def test_model_id_names_the_weights_that_were_loaded(saved, tmp_path):
    """Weights swapped under an unchanged JSON are refused (the JSON's hash would name weights that never ran);
    without a hash in the JSON the id comes from the loaded bytes."""
    import hashlib

    path, _ = saved
    torch.manual_seed(1)
    save_model(build_model(ARCH, len(CKPLUS6)), ModelMetadata(ARCH, list(CKPLUS6), input_size=64),
               tmp_path / "other")
    weights = path.with_suffix(".safetensors")
    weights.write_bytes((tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match=r"m\.safetensors: SHA-256 .* differs from weights_sha256"):
        load_model(path)
    _edit_meta(path, weights_sha256="")
    _, meta = load_model(path)
    assert meta.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta.model_id == f"{ARCH}@{meta.weights_sha256[:12]}"


def test_the_shipped_model_matches_its_hash_and_names_no_build_machine_path():
    from emotion_recognition_ros.core.model_io import default_model_path, read_metadata

    _, meta = load_model(None)
    assert meta.weights_sha256 == read_metadata(default_model_path()).weights_sha256
    text = default_model_path().with_suffix(".json").read_text()
    assert "/work/" not in text and "/home/" not in text and '"/' not in text


def test_an_unknown_model_name_lists_the_shipped_ones():
    from emotion_recognition_ros.core.model_io import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match=r"model 'nosuch': not a shipped model \(default, ckplus6\)"):
        load_model("nosuch")
