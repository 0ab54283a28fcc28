"""training/data/rolls.py: each training face's roll measured with the node's detector, and faces levelled by it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from training.data.dataset import FaceDataset
from training.data.rolls import image_key, level_faces, measure_rolls, read_rolls


def astronaut_face(roll: float) -> np.ndarray:
    """scikit-image's astronaut's face as a 48 px gray crop, rolled by `roll` degrees (counter-clockwise)."""
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    turn = cv2.getRotationMatrix2D((220.0, 100.0), roll, 1.0)
    rolled = cv2.warpAffine(gray, turn, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(rolled[30:190, 140:300], (48, 48), interpolation=cv2.INTER_AREA)


def dataset(images: list[np.ndarray]) -> FaceDataset:
    return FaceDataset(images, np.zeros(len(images), np.int64), ["happy"], [None] * len(images),
                       [f"/data/FER2013Train/fer{i:07d}.png" for i in range(len(images))])


def test_rolls_are_measured_and_undone(single_threaded):
    """A face rolled by -15 and +15 degrees reads about +15 and -15 degrees of roll (its eye line tilts the other
    way), and once levelled by it reads about 0."""
    data = dataset([astronaut_face(-15.0), astronaut_face(15.0)])
    rolls = measure_rolls(data, progress=False)
    assert sorted(rolls) == [image_key(p) for p in data.paths]
    measured = [rolls[image_key(p)] for p in data.paths]
    assert measured[0] == pytest.approx(15.0, abs=5.0) and measured[1] == pytest.approx(-15.0, abs=5.0), measured
    assert level_faces(data, rolls) == 2
    after = measure_rolls(data, progress=False)
    assert all(abs(after[image_key(p)]) < 4.0 for p in data.paths), after


def test_faces_without_a_roll_stay_as_they_are():
    images = [np.full((48, 48), 100, np.uint8), np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)]
    data = dataset([image.copy() for image in images])
    assert level_faces(data, {image_key(data.paths[1]): 0.0}) == 0
    assert all(np.array_equal(a, b) for a, b in zip(images, data.images))


def test_a_bad_rolls_file_is_named(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"rolls": {"FER2013Train/a.png": 3.5}}))
    bad.write_text("{not json")
    assert read_rolls([good]) == {"FER2013Train/a.png": 3.5}
    with pytest.raises(ValueError, match="bad.json"):
        read_rolls([good, bad])
